//! How a connect ends, in the probes' states, decided once for every probe
//! (check, scan, tcping, wait_for, udp_probe).
//!
//! States follow nmap's connect scan: `open` (handshake completed),
//! `closed` (RST / ECONNREFUSED, and self-connections), `filtered` (no
//! answer before the timeout, or an ICMP unreachable or a local firewall
//! saying no), `error` (anything else). EMFILE / ENFILE / ENOBUFS /
//! EADDRNOTAVAIL and friends are "retry later" (DESIGN.md section 8), never
//! a state: [`retry_later`] is asked before [`classify`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockAddr, Socket};

use crate::probe::os_text;
use crate::probe::types::{Outcome, State};

/// What a completed handshake to our own address is reported with.
pub const SELF_CONNECTION: &str = "self-connection (nothing listens)";

/// The state an OS error of a connect (or of a connected UDP socket) means.
#[inline]
pub fn classify(e: &io::Error) -> State {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => State::Closed,
        Some(
            libc::ETIMEDOUT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::EACCES
            | libc::EPERM,
        ) => State::Filtered,
        _ => State::Error,
    }
}

/// Errors that mean "not now": out of descriptors, buffers or local ports.
#[inline]
pub fn retry_later(e: &io::Error) -> bool {
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

/// A refusal `rtt` after the connect.
#[inline]
pub fn refused(rtt: Duration) -> Outcome {
    Outcome::new(State::Closed, Some(rtt), None)
}

/// No answer before the timeout.
#[inline]
pub fn silent() -> Outcome {
    Outcome::new(State::Filtered, None, None)
}

/// A connect that failed with `e`, `rtt` after it started.
#[inline]
pub fn failed(e: &io::Error, rtt: Duration) -> Outcome {
    match classify(e) {
        State::Closed => refused(rtt),
        state => Outcome::new(state, None, Some(os_text(e))),
    }
}

/// Did `sock` connect to itself? A target port inside the ephemeral range
/// on a local address can be picked as the source port: TCP's simultaneous
/// open then completes a handshake with nobody listening (about once per
/// full loopback scan), and a UDP probe reads its own datagram back.
#[inline]
pub fn is_self_connection(sock: &Socket, addr: &SocketAddr) -> bool {
    sock.local_addr().ok().and_then(|a| a.as_socket()) == Some(*addr)
}

/// A completed handshake `rtt` after the connect: open, unless it
/// connected to itself.
#[inline]
pub fn opened(sock: &Socket, addr: &SocketAddr, rtt: Duration) -> Outcome {
    if is_self_connection(sock, addr) {
        return Outcome::new(State::Closed, Some(rtt), Some(SELF_CONNECTION.into()));
    }
    Outcome::new(State::Open, Some(rtt.max(Duration::from_nanos(1))), None)
}

/// Start a connect on the nonblocking `sock` and, when it answers
/// EINPROGRESS, ask again at once: on loopback and on a fast LAN the
/// handshake has finished by then, which saves a trip through poll(2)
/// (DESIGN.md section 8). `None` while the handshake is still in flight.
#[inline]
pub fn connect_again(sock: &Socket, target: &SockAddr) -> Option<io::Result<()>> {
    match sock.connect(target) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => match sock.connect(target) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EALREADY | libc::EINPROGRESS)) => None,
            Err(e) if e.raw_os_error() == Some(libc::EISCONN) => Some(Ok(())),
            r => Some(r),
        },
        r => Some(r),
    }
}

/// How a connect that poll(2) reported ready ended: `Ok(true)` connected,
/// `Ok(false)` no error but no peer either (counted closed), or its error.
#[inline]
pub fn settle(sock: &Socket) -> io::Result<bool> {
    match sock.take_error() {
        Ok(None) => Ok(sock.peer_addr().is_ok()),
        Ok(Some(e)) | Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};
    use std::net::TcpListener;

    fn err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn errno_to_state() {
        assert_eq!(classify(&err(libc::ECONNREFUSED)), State::Closed);
        for code in [
            libc::ETIMEDOUT,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::EHOSTDOWN,
            libc::EACCES,
            libc::EPERM,
        ] {
            assert_eq!(classify(&err(code)), State::Filtered, "errno {code}");
        }
        for code in [libc::ECONNRESET, libc::EINVAL, libc::EAFNOSUPPORT] {
            assert_eq!(classify(&err(code)), State::Error, "errno {code}");
        }
        let plain = io::Error::other("no errno");
        assert_eq!(classify(&plain), State::Error);
    }

    #[test]
    fn retry_later_is_never_a_port_state_decision() {
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EAGAIN,
            libc::EADDRNOTAVAIL,
            libc::EINTR,
        ] {
            assert!(retry_later(&err(code)), "errno {code}");
        }
        for code in [libc::ECONNREFUSED, libc::ETIMEDOUT, libc::EHOSTUNREACH] {
            assert!(!retry_later(&err(code)), "errno {code}");
        }
    }

    #[test]
    fn failed_keeps_the_reason_except_for_a_plain_refusal() {
        let rtt = Duration::from_micros(30);
        let closed = failed(&err(libc::ECONNREFUSED), rtt);
        assert_eq!(closed, refused(rtt));
        assert_eq!(closed.reason(), "Connection refused");
        let unreachable = failed(&err(libc::EHOSTUNREACH), rtt);
        assert_eq!(unreachable.state, State::Filtered);
        assert_eq!(unreachable.rtt, None);
        assert_eq!(unreachable.error.as_deref(), Some("No route to host"));
        assert_eq!(silent().reason(), "timed out");
        assert_eq!(failed(&err(libc::ECONNRESET), rtt).state, State::Error);
    }

    #[test]
    fn a_self_connection_counts_as_closed() {
        // Bind to a port and connect to that same address: TCP simultaneous
        // open connects the socket to itself, as a scan can by accident.
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
            .unwrap();
        let me = s.local_addr().unwrap().as_socket().unwrap();
        s.connect(&SockAddr::from(me)).unwrap();
        assert!(is_self_connection(&s, &me));
        let o = opened(&s, &me, Duration::from_micros(5));
        assert_eq!(o.state, State::Closed);
        assert_eq!(o.error.as_deref(), Some(SELF_CONNECTION));
        assert_eq!(o.reason(), SELF_CONNECTION);
    }

    #[test]
    fn connect_again_answers_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let sock = || {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let s = sock();
        match connect_again(&s, &SockAddr::from(open)) {
            Some(r) => r.unwrap(),
            None => {
                // A loaded machine may not have finished the handshake yet.
                let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
                let never = crate::wait::Deadline::NEVER;
                crate::wait::wait_fd(fd, libc::POLLOUT, never, &crate::wait::NoInterrupt).unwrap();
                assert!(settle(&s).unwrap());
            }
        }
        assert_eq!(opened(&s, &open, Duration::ZERO).state, State::Open);
        let s = sock();
        let e = match connect_again(&s, &SockAddr::from(closed)) {
            Some(r) => r.unwrap_err(),
            None => {
                let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
                let never = crate::wait::Deadline::NEVER;
                crate::wait::wait_fd(fd, libc::POLLOUT, never, &crate::wait::NoInterrupt).unwrap();
                settle(&s).unwrap_err()
            }
        };
        assert_eq!(classify(&e), State::Closed);
    }
}
