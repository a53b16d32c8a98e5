//! `tcping`: time TCP handshakes to one target at a fixed interval, as
//! tcping / tcppinglib do (a "reply" is a completed handshake).
//!
//! [`Pinger`] is the stream (one ping per call, for the iterator and the
//! CLI); [`tcping`] collects a fixed count of its pings.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::addr::HostPort;
use crate::error::{try_reserve, Error, Phase, Result};
use crate::probe::classify::{connect_again, failed, opened, refused, settle, silent};
use crate::probe::plan::{resolve_deadline, resolve_message, resolve_target};
use crate::probe::types::{AddrControl, Outcome, State};
use crate::wait::{wait_fd, Deadline, Interrupt};

/// One timed connect to `addr`: the handshake time is measured from the
/// `connect()` call to its answer (socket creation and close are outside
/// the measurement, as in `time s.connect(addr)`).
pub fn connect_once(
    addr: &SocketAddr,
    source: Option<&SocketAddr>,
    timeout: Option<Duration>,
    intr: &dyn Interrupt,
) -> Result<Outcome> {
    let sock = Socket::new(Domain::for_address(*addr), Type::STREAM.cloexec(), None)
        .map_err(|e| Error::io(Phase::Connect, Some(addr), e))?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::io(Phase::Connect, Some(addr), e))?;
    if let Some(src) = source {
        sock.bind(&SockAddr::from(*src))
            .map_err(|e| Error::io(Phase::Bind, Some(src), e))?;
    }
    let target = SockAddr::from(*addr);
    let deadline = Deadline::after(timeout);
    let t0 = Instant::now();
    let r = match connect_again(&sock, &target) {
        Some(r) => r,
        None => {
            if !wait_fd(sock.as_raw_fd(), libc::POLLOUT, deadline, intr)? {
                return Ok(silent());
            }
            match settle(&sock) {
                Ok(true) => Ok(()),
                Ok(false) => return Ok(refused(t0.elapsed())),
                Err(e) => Err(e),
            }
        }
    };
    let rtt = t0.elapsed();
    Ok(match r {
        Ok(()) => opened(&sock, addr, rtt),
        Err(e) => failed(&e, rtt),
    })
}

/// One ping of a [`Pinger`].
#[derive(Debug)]
pub struct PingProbe {
    /// 1 for the first ping.
    pub seq: usize,
    /// Wall-clock time the ping started (for timestamps and streaks).
    pub started: SystemTime,
    /// The address pinged; `None` while the name does not resolve.
    pub address: Option<SocketAddr>,
    pub outcome: Outcome,
    /// Why the name did not resolve (`outcome.error` says it in words).
    pub unresolved: Option<Error>,
}

/// tcping as a stream: one ping per [`Pinger::next`], each started
/// `interval` after the one before it started (a ping that overran its
/// turn is followed at once). A name is resolved at the first ping (again
/// at the next one while it does not resolve) and pinged on the first of
/// its addresses that accepts, else its first address.
pub struct Pinger {
    target: HostPort,
    count: Option<usize>,
    interval: Duration,
    timeout: Option<Duration>,
    sent: usize,
    /// When the last ping was due to start.
    due: Option<Instant>,
    address: Option<SocketAddr>,
    /// No ping starts at or after this.
    deadline: Option<Instant>,
    /// Forget the address after this many failed pings in a row, so a
    /// service that moved (DNS failover) is found again.
    resolve_every: Option<usize>,
    failed_in_row: usize,
    ctl: AddrControl,
}

impl Pinger {
    /// `count: None` pings until the caller stops asking.
    pub fn new(
        target: HostPort,
        count: Option<usize>,
        interval: Duration,
        timeout: Option<Duration>,
    ) -> Self {
        Pinger {
            target,
            count,
            interval,
            timeout,
            sent: 0,
            due: None,
            address: None,
            deadline: None,
            resolve_every: None,
            failed_in_row: 0,
            ctl: AddrControl::default(),
        }
    }

    /// Ping only addresses of `ctl`'s family, from its source address.
    pub fn with_addr_control(mut self, ctl: AddrControl) -> Self {
        self.ctl = ctl;
        self
    }

    /// Start no ping after `deadline` from now (a ping under way finishes,
    /// within its timeout).
    pub fn with_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline.map(|d| Instant::now() + d);
        self
    }

    /// Resolve the name again after `n` failed pings in a row (`None`:
    /// only at the start, and while it does not resolve).
    pub fn with_resolve_every(mut self, n: Option<usize>) -> Self {
        self.resolve_every = n.filter(|&n| n > 0);
        self
    }

    fn past_deadline(&self, at: Instant) -> bool {
        self.deadline.is_some_and(|d| at >= d)
    }

    /// The next ping, after waiting for its turn; `None` once `count`
    /// pings are done. Errors: `intr` (Ctrl-C), or no socket to ping with.
    pub fn next(&mut self, intr: &dyn Interrupt) -> Result<Option<PingProbe>> {
        if self.count.is_some_and(|c| self.sent >= c) {
            return Ok(None);
        }
        if self.past_deadline(Instant::now()) {
            return Ok(None);
        }
        if let Some(due) = self.due {
            let next = due + self.interval;
            if self.past_deadline(next) {
                // Wait out the deadline (Ctrl-C still reaches us), then stop.
                let until = Deadline::at(self.deadline.unwrap_or(next));
                while !until.expired() {
                    std::thread::sleep(until.slice());
                    intr.check()?;
                }
                return Ok(None);
            }
            let until = Deadline::at(next);
            while !until.expired() {
                std::thread::sleep(until.slice());
                intr.check()?;
            }
            self.due = Some(next);
        }
        // With interval 0 against a port that refuses at once nothing above
        // or below waits, so nothing else would notice Ctrl-C.
        intr.check()?;
        self.sent += 1;
        let seq = self.sent;
        let started = SystemTime::now();
        let probe = match self.address {
            Some(a) => PingProbe {
                seq,
                started,
                address: Some(a),
                outcome: connect_once(&a, self.ctl.source.as_ref(), self.timeout, intr)?,
                unresolved: None,
            },
            None => self.resolve_and_ping(seq, started, intr)?,
        };
        if probe.outcome.state == State::Open {
            self.failed_in_row = 0;
        } else {
            self.failed_in_row += 1;
            if self
                .resolve_every
                .is_some_and(|n| self.failed_in_row % n == 0)
            {
                self.address = None;
            }
        }
        Ok(Some(probe))
    }

    fn resolve_and_ping(
        &mut self,
        seq: usize,
        started: SystemTime,
        intr: &dyn Interrupt,
    ) -> Result<PingProbe> {
        let deadline = resolve_deadline(self.timeout);
        let resolved = resolve_target(&self.target, &self.ctl, deadline, intr);
        // The schedule starts once the name has resolved (or failed to).
        self.due.get_or_insert_with(Instant::now);
        let addrs = match resolved {
            Ok(addrs) => addrs,
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) => {
                return Ok(PingProbe {
                    seq,
                    started,
                    address: None,
                    outcome: Outcome::new(State::Error, None, Some(resolve_message(&e))),
                    unresolved: Some(e),
                })
            }
        };
        // Pick the address: the first that accepts (localhost may listen
        // on one family only), else the first.
        let mut first: Option<(SocketAddr, Outcome)> = None;
        for a in &addrs {
            let o = connect_once(a, self.ctl.source.as_ref(), self.timeout, intr)?;
            if o.state == State::Open {
                first = Some((*a, o));
                break;
            }
            first.get_or_insert((*a, o));
        }
        let Some((address, outcome)) = first else {
            return Err(Error::invalid("target", "the name has no address"));
        };
        self.address = Some(address);
        Ok(PingProbe {
            seq,
            started,
            address: Some(address),
            outcome,
            unresolved: None,
        })
    }
}

/// What `tcping` measured.
#[derive(Debug, Clone)]
pub struct PingRun {
    /// The address pinged (the first of the target's addresses that
    /// accepted the first ping, else its first address).
    pub address: SocketAddr,
    /// One entry per ping: the handshake time, or the reason it failed.
    pub replies: Vec<std::result::Result<Duration, String>>,
}

/// Ping `target` `count` times, one ping every `interval` (start to start).
/// A name that does not resolve is an error.
pub fn tcping(
    target: &HostPort,
    count: usize,
    interval: Duration,
    timeout: Option<Duration>,
    ctl: &AddrControl,
    intr: &dyn Interrupt,
) -> Result<PingRun> {
    let mut pinger =
        Pinger::new(target.clone(), Some(count), interval, timeout).with_addr_control(*ctl);
    // count bounds a stream, not an allocation: the replies grow as pings
    // are made (count=2**31 with interval=0 pings until interrupted).
    let mut replies = Vec::new();
    let mut address = None;
    while let Some(p) = pinger.next(intr)? {
        if let Some(e) = p.unresolved {
            return Err(e);
        }
        address = address.or(p.address);
        try_reserve(&mut replies, 1)?;
        replies.push(match (p.outcome.state, p.outcome.rtt) {
            (State::Open, Some(rtt)) => Ok(rtt),
            _ => Err(p.outcome.reason()),
        });
    }
    match address {
        Some(address) => Ok(PingRun { address, replies }),
        None => Err(Error::invalid(
            "count",
            format!("count must be at least 1, got {count}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::net::TcpListener;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn pings_open_and_closed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = Some(Duration::from_secs(1));
        let ms10 = Duration::from_millis(10);
        let r = tcping(
            &hp("localhost", port),
            3,
            ms10,
            t,
            &AddrControl::default(),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(r.replies.len(), 3);
        assert!(r.replies.iter().all(|x| x.is_ok()), "{r:?}");
        assert!(r.address.is_ipv4());
        drop(l);
        let r = tcping(
            &hp("127.0.0.1", port),
            2,
            ms10,
            t,
            &AddrControl::default(),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(
            r.replies,
            vec![Err("Connection refused".to_string()); 2],
            "{r:?}"
        );
    }

    #[test]
    fn the_stream_numbers_pings_and_keeps_start_to_start_spacing() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let interval = Duration::from_millis(60);
        let mut p = Pinger::new(hp("127.0.0.1", port), Some(3), interval, None);
        let t0 = Instant::now();
        let mut seqs = Vec::new();
        while let Some(x) = p.next(&NoInterrupt).unwrap() {
            assert_eq!(x.outcome.state, State::Open);
            assert_eq!(x.address, Some(SocketAddr::from(([127, 0, 0, 1], port))));
            seqs.push(x.seq);
        }
        assert_eq!(seqs, [1, 2, 3]);
        let took = t0.elapsed();
        assert!(took >= 2 * interval, "{took:?}");
    }

    #[test]
    fn a_name_that_does_not_resolve_is_a_result_in_the_stream_and_an_error_in_tcping() {
        let t = Some(Duration::from_millis(100));
        let target = hp("no-such-host.invalid", 80);
        let mut p = Pinger::new(target.clone(), Some(1), Duration::ZERO, t);
        let x = p.next(&NoInterrupt).unwrap().unwrap();
        assert_eq!((x.seq, x.address, x.outcome.state), (1, None, State::Error));
        assert!(!x.outcome.error.unwrap().is_empty());
        assert!(x.unresolved.is_some());
        assert!(p.next(&NoInterrupt).unwrap().is_none());
        assert!(tcping(
            &target,
            1,
            Duration::ZERO,
            t,
            &AddrControl::default(),
            &NoInterrupt
        )
        .is_err());
    }

    #[test]
    fn a_deadline_ends_an_endless_stream() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut p = Pinger::new(hp("127.0.0.1", port), None, Duration::from_millis(40), None)
            .with_deadline(Some(Duration::from_millis(150)));
        let t0 = Instant::now();
        let mut n = 0;
        while p.next(&NoInterrupt).unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 4, "pings at 0, 40, 80 and 120 ms");
        assert!(t0.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn resolve_every_forgets_the_address_after_failures_in_a_row() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut p = Pinger::new(hp("127.0.0.1", port), None, Duration::ZERO, None)
            .with_resolve_every(Some(2));
        p.next(&NoInterrupt).unwrap().unwrap();
        assert!(p.address.is_some(), "one failure: kept");
        p.next(&NoInterrupt).unwrap().unwrap();
        assert!(
            p.address.is_none(),
            "two in a row: resolved again next time"
        );
        let x = p.next(&NoInterrupt).unwrap().unwrap();
        assert_eq!(x.address, Some(SocketAddr::from(([127, 0, 0, 1], port))));
    }
}
