//! `wait_for`: wait until every target accepts a connection (and, with
//! `expect`, answers `send` with matching bytes), retrying each with
//! backoff, all targets at once, under one overall deadline; or until
//! every target stops accepting (`Closed`), or no connection remains on a
//! local port (`Drained`, from the kernel's tables in `drain`).

use std::net::IpAddr;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::addr::HostPort;
use crate::error::{Error, Result};
use crate::options::SocketOptions;
use crate::probe::classify::{failed, opened, silent};
use crate::probe::drain;
use crate::probe::types::{Outcome, State};
use crate::probe::Cancel;
use crate::sock::{read_some, write_all};
use crate::tcp::connect;
use crate::wait::{Deadline, Interrupt, SLICE};

/// The longest pause between two attempts on one target.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The longest one attempt (connect + send + expect) may take.
pub const MAX_ATTEMPT: Duration = Duration::from_secs(5);
/// How much of a reply `expect` looks at.
pub const MAX_REPLY: usize = 65_536;

/// What the wait waits for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WaitState {
    /// Accepting (and answering, with `Readiness`).
    #[default]
    Open,
    /// Refusing or not answering.
    Closed,
    /// No connection on the local port in a state not in the list
    /// (names from `tcp::TCP_STATES`; LISTEN never counts).
    Drained(Vec<&'static str>),
}

/// How to wait, beyond the targets and the overall deadline.
#[derive(Debug, Clone, Default)]
pub struct WaitSpec {
    pub state: WaitState,
    pub ready: Readiness,
    /// Before the first attempt (inside the overall deadline, as ansible).
    pub delay: Duration,
    /// The longest one attempt may take (`MAX_ATTEMPT` when `None`).
    pub connect_timeout: Option<Duration>,
}

/// What counts as "up" beyond an accepted connection.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pub send: Option<Vec<u8>>,
    pub expect: Option<Vec<u8>>,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// One attempt: connect, send, read until `expect` shows up. `Ok` with the
/// connect's outcome: open, or closed when the connect met itself.
fn attempt(
    target: &HostPort,
    ready: &Readiness,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Outcome> {
    let started = Instant::now();
    let (sock, peer) = connect(
        target,
        &SocketOptions::default(),
        None,
        deadline.remaining(),
        intr,
    )?;
    let connected = opened(&sock, &peer, started.elapsed());
    if connected.state != State::Open {
        return Ok(connected);
    }
    let peer = Some(peer);
    if let Some(data) = &ready.send {
        write_all(&sock, data, deadline, intr, peer.as_ref())?;
    }
    let Some(expect) = &ready.expect else {
        return Ok(connected);
    };
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = read_some(&sock, &mut buf, deadline, intr, peer.as_ref())?;
        if n == 0 {
            return Err(Error::io(
                crate::error::Phase::Recv,
                peer.as_ref(),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "closed without sending {:?}",
                        String::from_utf8_lossy(expect)
                    ),
                ),
            ));
        }
        got.extend_from_slice(&buf[..n]);
        if contains(&got, expect) {
            return Ok(connected);
        }
        if got.len() >= MAX_REPLY {
            return Err(Error::LimitExceeded {
                what: "reply without the expected bytes",
                limit: MAX_REPLY,
            });
        }
    }
}

/// What a failed attempt says about the target, in the probes' states
/// (the same classification as check, scan and tcping) and words.
fn failure(e: &Error) -> Outcome {
    match e {
        // The connect's deadline passed with the handshake in flight.
        Error::Connect { attempts, .. }
            if !attempts.is_empty() && attempts[0].error.kind() == std::io::ErrorKind::TimedOut =>
        {
            silent()
        }
        Error::Connect { attempts, .. } if !attempts.is_empty() => {
            failed(&attempts[0].error, Duration::ZERO)
        }
        Error::Timeout { .. } => silent(),
        Error::Io { source, .. } => failed(source, Duration::ZERO),
        other => Outcome::new(State::Error, None, Some(other.to_string())),
    }
}

/// Keep trying one target until it is up, the deadline passes or `cancel`
/// trips. Returns the last failure when it never came up.
fn wait_one(
    target: &HostPort,
    spec: &WaitSpec,
    deadline: Deadline,
    interval: Duration,
    cancel: &Cancel,
) -> std::result::Result<(), String> {
    let mut pause = interval;
    let mut last = "not tried".to_string();
    let per_attempt = spec.connect_timeout.unwrap_or(MAX_ATTEMPT);
    loop {
        let per = deadline.min(Deadline::after(Some(per_attempt)));
        match check_once(target, spec, per, cancel) {
            Ok(None) => return Ok(()),
            Ok(Some(why)) => last = why,
            Err(Error::Interrupted) => return Err(last),
            Err(e) => last = e.to_string(),
        }
        if deadline.expired() {
            return Err(last);
        }
        let until = deadline.min(Deadline::after(Some(pause)));
        while !until.expired() {
            thread::sleep(until.slice().min(Duration::from_millis(20)));
            if cancel.is_set() {
                return Err(last);
            }
        }
        if deadline.expired() {
            return Err(last);
        }
        // Back off: 1.5x per failure, at most MAX_BACKOFF (or interval if larger).
        pause = pause.mul_f64(1.5).min(MAX_BACKOFF.max(interval));
    }
}

/// One look at `target`: `None` when it is as `spec` wants it, else why not.
fn check_once(
    target: &HostPort,
    spec: &WaitSpec,
    per: Deadline,
    intr: &dyn Interrupt,
) -> Result<Option<String>> {
    let outcome = || match attempt(target, &spec.ready, per, intr) {
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Ok(o) => Ok(o),
        Err(e) => Ok(failure(&e)),
    };
    Ok(match &spec.state {
        WaitState::Open => {
            let o = outcome()?;
            (o.state != State::Open).then(|| o.reason())
        }
        // A name that does not resolve is not a closed port: keep waiting.
        WaitState::Closed => match outcome()? {
            o if o.state == State::Open => Some("still accepting connections".into()),
            o if o.state == State::Error => Some(o.reason()),
            _ => None,
        },
        WaitState::Drained(ignore) => {
            let ip = target
                .host
                .parse::<IpAddr>()
                .ok()
                .filter(|ip| !ip.is_unspecified());
            let held = drain::holding(&drain::tcp_entries()?, ip, target.port, ignore);
            (!held.is_empty()).then(|| {
                format!(
                    "{} connection(s) still open on port {}: {}",
                    held.len(),
                    target.port,
                    drain::describe(&held)
                )
            })
        }
    })
}

/// Wait until every target is up; returns the time that took. On timeout
/// the error names every target still down and why.
///
/// Each target is tried on its own thread. On Ctrl-C this returns at once
/// (within one 50 ms check) and the threads, told to stop, close their
/// sockets and end within one wait slice on their own.
pub fn wait_for(
    targets: &[HostPort],
    ready: &Readiness,
    timeout: Option<Duration>,
    interval: Duration,
    intr: &dyn Interrupt,
) -> Result<Duration> {
    let spec = WaitSpec {
        ready: ready.clone(),
        ..WaitSpec::default()
    };
    wait_until(targets, &spec, timeout, interval, intr)
}

/// [`wait_for`] for any [`WaitState`], after `spec.delay`; the timeout
/// covers the delay and bounds every attempt (ansible #74237).
pub fn wait_until(
    targets: &[HostPort],
    spec: &WaitSpec,
    timeout: Option<Duration>,
    interval: Duration,
    intr: &dyn Interrupt,
) -> Result<Duration> {
    let start = Instant::now();
    let deadline = Deadline::after(timeout);
    let delay = deadline.min(Deadline::after(Some(spec.delay)));
    while !delay.expired() {
        thread::sleep(delay.slice());
        intr.check()?;
    }
    let cancel = Arc::new(Cancel::new());
    let ready = Arc::new(spec.clone());
    let (tx, rx) = mpsc::channel::<(usize, std::result::Result<(), String>)>();
    for (i, t) in targets.iter().enumerate() {
        let (tx, stop, ready, t) = (tx.clone(), cancel.clone(), ready.clone(), t.clone());
        let spawned = thread::Builder::new()
            .name("socketkit-wait".into())
            .spawn(move || {
                let _ = tx.send((i, wait_one(&t, &ready, deadline, interval, &stop)));
            });
        if let Err(e) = spawned {
            cancel.set();
            return Err(Error::io(crate::error::Phase::Connect, None, e));
        }
    }
    drop(tx);
    let mut down: Vec<Option<String>> = vec![None; targets.len()];
    let mut left = targets.len();
    while left > 0 {
        match rx.recv_timeout(SLICE / 2) {
            Ok((i, r)) => {
                left -= 1;
                if let Err(why) = r {
                    down[i] = Some(why);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = intr.check() {
                    cancel.set();
                    return Err(e);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let still: Vec<(String, String)> = targets
        .iter()
        .zip(down)
        .filter_map(|(t, d)| d.map(|why| (t.to_string(), why)))
        .collect();
    if still.is_empty() {
        Ok(start.elapsed())
    } else {
        Err(Error::NotReady {
            waited: start.elapsed().as_secs_f64(),
            down: still,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};

    fn hp(port: u16) -> HostPort {
        HostPort {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn waits_for_a_late_listener() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
            thread::sleep(Duration::from_millis(1500));
            drop(l);
        });
        let waited = wait_for(
            &[hp(port)],
            &Readiness::default(),
            Some(Duration::from_secs(5)),
            Duration::from_millis(50),
            &NoInterrupt,
        )
        .unwrap();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        t.join().unwrap();
    }

    #[test]
    fn timeout_names_targets_still_down() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = l.local_addr().unwrap().port();
        let down = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = wait_for(
            &[hp(up), hp(down)],
            &Readiness::default(),
            Some(Duration::from_millis(300)),
            Duration::from_millis(50),
            &NoInterrupt,
        )
        .unwrap_err();
        let Error::NotReady { down: d, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, format!("127.0.0.1:{down}"));
        assert!(e.to_string().contains(&format!("127.0.0.1:{down}")), "{e}");
    }

    #[test]
    fn failures_read_as_the_other_probes_classify_them() {
        let connect = |code| Error::Connect {
            target: "127.0.0.1:1".into(),
            attempts: vec![crate::error::Attempt {
                address: "127.0.0.1:1".parse().unwrap(),
                error: std::io::Error::from_raw_os_error(code),
            }],
        };
        let refused = failure(&connect(libc::ECONNREFUSED));
        assert_eq!(
            (refused.state, refused.reason().as_str()),
            (State::Closed, "Connection refused")
        );
        let unreachable = failure(&connect(libc::EHOSTUNREACH));
        assert_eq!(unreachable.state, State::Filtered);
        let silent = failure(&Error::timeout(crate::error::Phase::Connect, None));
        assert_eq!(
            (silent.state, silent.reason().as_str()),
            (State::Filtered, "timed out")
        );
    }

    #[test]
    fn expect_checks_the_reply() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let srv = thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            c.write_all(b"+PONG\r\n").unwrap();
        });
        let ready = Readiness {
            send: Some(b"PING".to_vec()),
            expect: Some(b"PONG".to_vec()),
        };
        wait_for(
            &[hp(port)],
            &ready,
            Some(Duration::from_secs(3)),
            Duration::from_millis(50),
            &NoInterrupt,
        )
        .unwrap();
        srv.join().unwrap();
    }

    fn spec(state: WaitState) -> WaitSpec {
        WaitSpec {
            state,
            ..WaitSpec::default()
        }
    }

    #[test]
    fn closed_waits_for_a_listener_to_go_away() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            drop(l);
        });
        let ms50 = Duration::from_millis(50);
        let waited = wait_until(
            &[hp(port)],
            &spec(WaitState::Closed),
            Some(Duration::from_secs(5)),
            ms50,
            &NoInterrupt,
        )
        .unwrap();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        t.join().unwrap();
    }

    /// A listener without SO_REUSEADDR (std sets it): bind() then picks no
    /// port where an earlier server's connections linger.
    fn fresh_listener() -> TcpListener {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        s.listen(16).unwrap();
        s.into()
    }

    #[test]
    fn drained_ignores_time_wait_unless_told_not_to() {
        let l = fresh_listener();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, _) = l.accept().unwrap();
        let short = Some(Duration::from_millis(200));
        let ms20 = Duration::from_millis(20);
        let ignore_tw = spec(WaitState::Drained(vec!["TIME_WAIT"]));
        let e = wait_until(&[hp(port)], &ignore_tw, short, ms20, &NoInterrupt).unwrap_err();
        assert!(e.to_string().contains("still open"), "{e}");
        // The server closes first: its side of the connection, on the
        // listening port, sits in TIME_WAIT.
        drop(s);
        let mut c = c;
        let _ = c.read(&mut [0u8; 1]);
        drop(c);
        wait_until(
            &[hp(port)],
            &ignore_tw,
            Some(Duration::from_secs(3)),
            ms20,
            &NoInterrupt,
        )
        .unwrap();
        let strict = spec(WaitState::Drained(vec![]));
        assert!(wait_until(&[hp(port)], &strict, short, ms20, &NoInterrupt).is_err());
    }

    #[test]
    fn the_delay_is_inside_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut s = spec(WaitState::Open);
        s.delay = Duration::from_millis(150);
        let waited = wait_until(
            &[hp(port)],
            &s,
            None,
            Duration::from_millis(10),
            &NoInterrupt,
        )
        .unwrap();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        s.delay = Duration::from_secs(30);
        let t0 = Instant::now();
        let r = wait_until(
            &[hp(port)],
            &s,
            Some(Duration::from_millis(100)),
            Duration::from_millis(10),
            &NoInterrupt,
        );
        assert!(t0.elapsed() < Duration::from_secs(2));
        drop(r);
    }
}
