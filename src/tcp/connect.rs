//! Connecting by name under one deadline: resolve on a thread the deadline
//! can walk away from, then race the addresses as RFC 8305 (Happy Eyeballs)
//! does: IPv6 first, the next address 250 ms later or as soon as one fails.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::addr::{happy_eyeballs_order, Family, HostPort};
use crate::error::{Attempt, Error, Phase, Result};
use crate::options::SocketOptions;
use crate::resolve::resolve;
use crate::wait::{poll_many, Deadline, Interrupt};

/// RFC 8305 section 5: "Connection Attempt Delay", recommended 250 ms.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// A fresh nonblocking socket for `addr`, with `opts` applied and bound to
/// `source` when given.
pub fn new_socket(
    addr: &SocketAddr,
    ty: Type,
    opts: &SocketOptions,
    source: Option<&SocketAddr>,
) -> Result<Socket> {
    let domain = Domain::for_address(*addr);
    let err = |e| Error::io(Phase::Connect, Some(addr), e);
    // One syscall instead of three where the platform takes SOCK_NONBLOCK.
    #[cfg(target_os = "linux")]
    let s = Socket::new(domain, ty.nonblocking(), None).map_err(err)?;
    #[cfg(not(target_os = "linux"))]
    let s = {
        let s = Socket::new(domain, ty, None).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        s
    };
    opts.apply(&s, domain)?;
    if ty == Type::STREAM && opts.nodelay.is_none() {
        // socketkit's default (defaults::NODELAY, and why).
        s.set_tcp_nodelay(crate::defaults::NODELAY).map_err(err)?;
    }
    if let Some(src) = source {
        s.bind(&SockAddr::from(*src))
            .map_err(|e| Error::io(Phase::Bind, Some(src), e))?;
    }
    Ok(s)
}

/// Connect a TCP socket to `target` within `timeout` (resolution included).
pub fn connect(
    target: &HostPort,
    opts: &SocketOptions,
    source: Option<SocketAddr>,
    timeout: Option<Duration>,
    intr: &dyn Interrupt,
) -> Result<(Socket, SocketAddr)> {
    connect_until(
        target,
        opts,
        source,
        Family::Any,
        Deadline::after(timeout),
        intr,
    )
}

/// `connect` by a deadline the caller holds, so that what follows the
/// connect (a TLS handshake) can share it: one deadline for the whole setup.
/// The addresses of `target` in `family` (and in the family of `source`,
/// when given), in the resolver's order. A name without such an address
/// fails as a lookup does (ResolveError).
pub fn resolve_family(
    target: &HostPort,
    family: Family,
    source: Option<&SocketAddr>,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Vec<SocketAddr>> {
    let family = family.with_source(source)?;
    let addrs = resolve(&target.host, target.port, deadline, intr)?;
    family
        .filter(&target.host, &addrs, |a| a.ip())
        .map_err(|message| Error::Resolve {
            host: target.host.clone(),
            code: libc::EAI_NONAME,
            message,
        })
}

/// `family` keeps only that family's addresses (a name without one fails
/// as a lookup does: ResolveError).
pub fn connect_until(
    target: &HostPort,
    opts: &SocketOptions,
    source: Option<SocketAddr>,
    family: Family,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<(Socket, SocketAddr)> {
    // An explicit family that contradicts the source address is a
    // ValueError; with no family, the source's family filters below.
    family.with_source(source.as_ref())?;
    let mut addrs = resolve_family(target, family, None, deadline, intr)?;
    if let Some(src) = source {
        addrs.retain(|a| a.is_ipv4() == src.is_ipv4());
        if addrs.is_empty() {
            return Err(Error::invalid(
                "source_address",
                format!("{src} is of another address family than every address of {target}"),
            ));
        }
    }
    race(
        target,
        &happy_eyeballs_order(&addrs),
        opts,
        source,
        deadline,
        intr,
    )
}

/// Connect to addresses resolved beforehand (a probe resolves its names
/// once, up front), raced as `connect_until` races a name's addresses.
pub fn connect_addrs(
    target: &HostPort,
    addrs: &[SocketAddr],
    opts: &SocketOptions,
    source: Option<SocketAddr>,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<(Socket, SocketAddr)> {
    race(
        target,
        &happy_eyeballs_order(addrs),
        opts,
        source,
        deadline,
        intr,
    )
}

struct InFlight {
    sock: Socket,
    addr: SocketAddr,
}

fn race(
    target: &HostPort,
    addrs: &[SocketAddr],
    opts: &SocketOptions,
    source: Option<SocketAddr>,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<(Socket, SocketAddr)> {
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut inflight: Vec<InFlight> = Vec::new();
    let mut next = 0;
    let mut next_start = Instant::now();
    loop {
        // Start the next attempt when its turn has come or nothing is in flight.
        while next < addrs.len() && (inflight.is_empty() || Instant::now() >= next_start) {
            let addr = addrs[next];
            next += 1;
            let sock = match new_socket(&addr, Type::STREAM, opts, source.as_ref()) {
                Ok(s) => s,
                // Option errors are the caller's, not this address's: raise
                // them as they are, so the message names the option.
                Err(
                    e @ (Error::Unsupported { .. }
                    | Error::InvalidArgument { .. }
                    | Error::Io {
                        phase: Phase::Option,
                        ..
                    }),
                ) => return Err(e),
                Err(Error::Io { source, .. }) => {
                    attempts.push(Attempt {
                        address: addr,
                        error: source,
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let sa = SockAddr::from(addr);
            let first = sock.connect(&sa);
            // On loopback the handshake has usually finished by the time
            // connect() returns EINPROGRESS: asking again answers at once
            // (EISCONN) and saves the poll (DESIGN.md section 8).
            let outcome = match first {
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => sock.connect(&sa),
                other => other,
            };
            match outcome {
                Ok(()) => return Ok((sock, addr)),
                Err(e) if e.raw_os_error() == Some(libc::EISCONN) => return Ok((sock, addr)),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINPROGRESS) | Some(libc::EALREADY)
                    ) =>
                {
                    inflight.push(InFlight { sock, addr });
                    next_start = Instant::now() + ATTEMPT_DELAY;
                }
                Err(e) => attempts.push(Attempt {
                    address: addr,
                    error: e,
                }),
            }
        }
        if inflight.is_empty() {
            return Err(Error::Connect {
                target: target.to_string(),
                attempts,
            });
        }
        if deadline.expired() {
            for f in inflight.drain(..) {
                attempts.push(Attempt {
                    address: f.addr,
                    error: io::Error::from(io::ErrorKind::TimedOut),
                });
            }
            return Err(Error::Connect {
                target: target.to_string(),
                attempts,
            });
        }
        let mut wait = deadline.slice();
        if next < addrs.len() {
            wait = wait.min(next_start.saturating_duration_since(Instant::now()));
        }
        let (n, pfds) = poll_many(
            inflight.iter().map(|f| f.sock.as_raw_fd()),
            libc::POLLOUT,
            wait,
        );
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io(Phase::Connect, None, e));
            }
        }
        if n <= 0 {
            intr.check()?;
            continue;
        }
        // Walk backwards so removals keep the remaining indices valid.
        for i in (0..pfds.len()).rev() {
            if pfds[i].revents == 0 {
                continue;
            }
            let f = inflight.remove(i);
            match f.sock.take_error() {
                Ok(None) => {
                    // A peer address means the handshake finished.
                    if f.sock.peer_addr().is_ok() {
                        return Ok((f.sock, f.addr));
                    }
                    attempts.push(Attempt {
                        address: f.addr,
                        error: io::Error::from_raw_os_error(libc::ECONNREFUSED),
                    });
                }
                Ok(Some(e)) | Err(e) => attempts.push(Attempt {
                    address: f.addr,
                    error: e,
                }),
            }
            // RFC 8305: a failure starts the next attempt at once.
            next_start = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::net::TcpListener;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort::new(host, port)
    }

    #[test]
    fn connects_to_v4_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (s, _) = connect(
            &hp("127.0.0.1", port),
            &SocketOptions::default(),
            None,
            Some(Duration::from_secs(2)),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(s.peer_addr().unwrap().as_socket().unwrap().port(), port);
    }

    #[test]
    fn localhost_falls_back_between_families() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (s, _) = connect(
            &hp("localhost", port),
            &SocketOptions::default(),
            None,
            Some(Duration::from_secs(2)),
            &NoInterrupt,
        )
        .unwrap();
        assert!(s.peer_addr().unwrap().as_socket().unwrap().is_ipv4());
    }

    #[test]
    fn refused_lists_attempts() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = connect(
            &hp("127.0.0.1", port),
            &SocketOptions::default(),
            None,
            Some(Duration::from_secs(2)),
            &NoInterrupt,
        )
        .unwrap_err();
        match e {
            Error::Connect { attempts, .. } => {
                assert_eq!(attempts.len(), 1);
                assert_eq!(attempts[0].error.raw_os_error(), Some(libc::ECONNREFUSED));
            }
            other => panic!("{other:?}"),
        }
    }
}
