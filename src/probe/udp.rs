//! `udp_probe`: send a datagram on a connected UDP socket and classify the
//! answer: a reply is `open`, an ICMP port unreachable (reported by Linux
//! as ECONNREFUSED on a connected socket) is `closed`, silence through every
//! retry is `open|filtered` (nmap's -sU wording).

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::addr::HostPort;
use crate::error::{Error, Phase, Result};
use crate::probe::classify::{classify, failed, is_self_connection, SELF_CONNECTION};
use crate::probe::plan::{resolve_deadline, resolve_target};
use crate::probe::types::{AddrControl, Outcome, State};
use crate::wait::{wait_fd, Deadline, Interrupt};

/// An error the connected socket reported, `rtt` after the send: an ICMP
/// port unreachable is closed, another unreachable filtered (the same
/// [`classify`] as TCP), the rest an error.
fn icmp_outcome(e: &io::Error, rtt: Duration) -> Outcome {
    match classify(e) {
        State::Closed => Outcome::new(State::Closed, Some(rtt), Some("port unreachable".into())),
        _ => failed(e, rtt),
    }
}

fn probe_addr(
    addr: &SocketAddr,
    source: Option<&SocketAddr>,
    payload: &[u8],
    timeout: Option<Duration>,
    retries: usize,
    intr: &dyn Interrupt,
) -> Result<Outcome> {
    let io = |e| Error::io(Phase::Connect, Some(addr), e);
    let sock = Socket::new(Domain::for_address(*addr), Type::DGRAM.cloexec(), None).map_err(io)?;
    sock.set_nonblocking(true).map_err(io)?;
    if let Some(src) = source {
        sock.bind(&SockAddr::from(*src))
            .map_err(|e| Error::io(Phase::Bind, Some(src), e))?;
    }
    sock.connect(&SockAddr::from(*addr)).map_err(io)?;
    if is_self_connection(&sock, addr) {
        // Our own datagram would come back as the "reply".
        return Ok(Outcome::new(
            State::Closed,
            None,
            Some(SELF_CONNECTION.into()),
        ));
    }
    let mut buf = [0u8; 2048];
    for _ in 0..=retries {
        let t0 = Instant::now();
        if let Err(e) = sock.send(payload) {
            let o = icmp_outcome(&e, t0.elapsed());
            if o.state == State::Error {
                return Err(Error::io(Phase::Send, Some(addr), e));
            }
            return Ok(o);
        }
        let deadline = Deadline::after(timeout);
        loop {
            if !wait_fd(sock.as_raw_fd(), libc::POLLIN, deadline, intr)? {
                break; // silence: next retry
            }
            match (&sock).read(&mut buf) {
                Ok(_) => {
                    return Ok(Outcome::new(
                        State::Open,
                        Some(t0.elapsed().max(Duration::from_nanos(1))),
                        None,
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => intr.check()?,
                Err(e) => return Ok(icmp_outcome(&e, t0.elapsed())),
            }
        }
    }
    Ok(Outcome::new(State::OpenFiltered, None, None))
}

/// Probe `target` over UDP: `timeout` per try, `retries` more tries after
/// the first. A name's addresses are tried in order until one answers.
pub fn udp_probe(
    target: &HostPort,
    payload: &[u8],
    timeout: Option<Duration>,
    retries: usize,
    ctl: &AddrControl,
    intr: &dyn Interrupt,
) -> Result<(SocketAddr, Outcome)> {
    let addrs = resolve_target(target, ctl, resolve_deadline(timeout), intr)?;
    let mut best: Option<(SocketAddr, Outcome)> = None;
    for a in addrs {
        let o = probe_addr(&a, ctl.source.as_ref(), payload, timeout, retries, intr)?;
        if o.state == State::Open {
            return Ok((a, o));
        }
        // Prefer "open|filtered" over "closed" from another family.
        let replace = match &best {
            None => true,
            Some((_, b)) => b.state == State::Closed && o.state == State::OpenFiltered,
        };
        if replace {
            best = Some((a, o));
        }
    }
    Ok(best.expect("resolve returns at least one address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::net::UdpSocket;

    #[test]
    fn open_and_closed() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = srv.local_addr().unwrap().port();
        let echo = std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let (n, peer) = srv.recv_from(&mut b).unwrap();
            srv.send_to(&b[..n], peer).unwrap();
        });
        let hp = |p| HostPort {
            host: "127.0.0.1".into(),
            port: p,
        };
        let t = Some(Duration::from_secs(1));
        let (_, o) = udp_probe(
            &hp(port),
            b"hi",
            t,
            1,
            &AddrControl::default(),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(o.state, State::Open);
        echo.join().unwrap();
        let closed = {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let (_, o) = udp_probe(
            &hp(closed),
            b"",
            t,
            1,
            &AddrControl::default(),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(o.state, State::Closed);
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sp = silent.local_addr().unwrap().port();
        let (_, o) = udp_probe(
            &hp(sp),
            b"x",
            Some(Duration::from_millis(50)),
            1,
            &AddrControl::default(),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(o.state, State::OpenFiltered);
    }
}
