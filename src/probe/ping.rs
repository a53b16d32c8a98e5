//! `tcping`: time TCP handshakes to one target at a fixed interval, as
//! tcping / tcppinglib do (a "reply" is a completed handshake).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::addr::{happy_eyeballs_order, HostPort};
use crate::error::{Error, Phase, Result};
use crate::probe::engine::{Outcome, State};
use crate::probe::resolve_deadline;
use crate::resolve::resolve;
use crate::wait::{wait_fd, Deadline, Interrupt};

/// One timed connect to `addr`: the handshake time is measured from the
/// `connect()` call to its answer (socket creation and close are outside
/// the measurement, as in `time s.connect(addr)`).
pub fn connect_once(
    addr: &SocketAddr,
    timeout: Option<Duration>,
    intr: &dyn Interrupt,
) -> Result<Outcome> {
    let sock = Socket::new(Domain::for_address(*addr), Type::STREAM.cloexec(), None)
        .map_err(|e| Error::io(Phase::Connect, Some(addr), e))?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::io(Phase::Connect, Some(addr), e))?;
    let target = SockAddr::from(*addr);
    let t0 = Instant::now();
    let deadline = Deadline::after(timeout);
    let mut r = sock.connect(&target);
    if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS)) {
        // Ask again at once: on loopback the handshake is already done.
        r = sock.connect(&target);
        if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EALREADY)) {
            if !wait_fd(sock.as_raw_fd(), libc::POLLOUT, deadline, intr)? {
                return Ok(Outcome {
                    state: State::Filtered,
                    rtt: None,
                    error: Some("timed out".into()),
                });
            }
            r = match sock.take_error() {
                Ok(None) => Ok(()),
                Ok(Some(e)) | Err(e) => Err(e),
            };
        }
    }
    let rtt = t0.elapsed();
    Ok(match r {
        Ok(()) => Outcome {
            state: State::Open,
            rtt: Some(rtt.max(Duration::from_nanos(1))),
            error: None,
        },
        Err(e) if e.raw_os_error() == Some(libc::EISCONN) => Outcome {
            state: State::Open,
            rtt: Some(rtt.max(Duration::from_nanos(1))),
            error: None,
        },
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Outcome {
            state: State::Closed,
            rtt: Some(rtt),
            error: Some(crate::probe::os_text(&e)),
        },
        Err(e) => {
            let state = match e.raw_os_error() {
                Some(libc::ETIMEDOUT | libc::EHOSTUNREACH | libc::ENETUNREACH) => State::Filtered,
                _ => State::Error,
            };
            Outcome {
                state,
                rtt: None,
                error: Some(crate::probe::os_text(&e)),
            }
        }
    })
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
pub fn tcping(
    target: &HostPort,
    count: usize,
    interval: Duration,
    timeout: Option<Duration>,
    intr: &dyn Interrupt,
) -> Result<PingRun> {
    let addrs = resolve(&target.host, target.port, resolve_deadline(timeout), intr)?;
    let addrs = happy_eyeballs_order(&addrs);
    let mut replies = Vec::with_capacity(count);
    let mut address = addrs[0];
    let mut next = Instant::now();
    for i in 0..count {
        if i > 0 {
            next += interval;
            let until = Deadline::at(next);
            while !until.expired() {
                std::thread::sleep(until.slice());
                intr.check()?;
            }
        }
        let o = if i == 0 {
            // Pick the address: the first that accepts (localhost may
            // listen on one family only).
            let mut first: Option<Outcome> = None;
            let mut found = None;
            for a in &addrs {
                let o = connect_once(a, timeout, intr)?;
                if o.state == State::Open {
                    found = Some((*a, o));
                    break;
                }
                first.get_or_insert(o);
            }
            match found {
                Some((a, o)) => {
                    address = a;
                    o
                }
                None => first.expect("at least one address"),
            }
        } else {
            connect_once(&address, timeout, intr)?
        };
        replies.push(match (o.state, o.rtt) {
            (State::Open, Some(rtt)) => Ok(rtt),
            _ => Err(o.error.unwrap_or_else(|| o.state.as_str().to_string())),
        });
    }
    Ok(PingRun { address, replies })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::net::TcpListener;

    #[test]
    fn pings_open_and_closed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hp = HostPort {
            host: "localhost".into(),
            port,
        };
        let r = tcping(
            &hp,
            3,
            Duration::from_millis(10),
            Some(Duration::from_secs(1)),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(r.replies.len(), 3);
        assert!(r.replies.iter().all(|x| x.is_ok()), "{r:?}");
        assert!(r.address.is_ipv4());
        drop(l);
        let r = tcping(
            &HostPort {
                host: "127.0.0.1".into(),
                port,
            },
            2,
            Duration::from_millis(10),
            Some(Duration::from_secs(1)),
            &NoInterrupt,
        )
        .unwrap();
        assert!(r.replies.iter().all(|x| x.is_err()), "{r:?}");
    }
}
