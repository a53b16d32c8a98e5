//! A UDP socket: bound, connected, or made on the first send in the family
//! of the destination (as the stdlib's implicit bind on first `sendto`).

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::addr::HostPort;
use crate::error::{Error, Phase, Result};
use crate::options::{read_back, OptValue, Proto, SocketOptions};
use crate::resolve::resolve;
use crate::sock::{SockHandle, Timeout};
use crate::udp::gro::Gro;
use crate::udp::gso::Gso;
use crate::udp::{batch, MAX_DATAGRAM};
use crate::wait::{wait_fd, Deadline, Interrupt};

#[derive(Debug)]
pub struct UdpSock {
    sock: SockHandle,
    timeout: Timeout,
    opts: SocketOptions,
    peer: Mutex<Option<SocketAddr>>,
    gso: Gso,
    gro: Gro,
}

/// The address to use of a resolved name: the socket's family when it has
/// one, else IPv4 first (a datagram to the wrong family of `localhost` is
/// silently lost, and IPv4 is what UDP services bind most).
pub fn pick(addrs: &[SocketAddr], family: Option<Domain>) -> Option<SocketAddr> {
    match family {
        Some(d) => addrs.iter().copied().find(|a| Domain::for_address(*a) == d),
        None => addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first().copied()),
    }
}

impl UdpSock {
    /// A socket bound to `bind` and/or connected to `connect`; with neither,
    /// the socket is made by the first `sendto`.
    pub fn new(
        bind: Option<&HostPort>,
        connect: Option<&HostPort>,
        opts: SocketOptions,
        timeout: Option<Duration>,
        intr: &dyn Interrupt,
    ) -> Result<Self> {
        opts.validate(Proto::Udp)?;
        let me = UdpSock {
            sock: SockHandle::new(None),
            timeout: Timeout::new(timeout),
            opts,
            peer: Mutex::new(None),
            gso: Gso::default(),
            gro: Gro::default(),
        };
        let deadline = me.timeout.deadline();
        if let Some(b) = bind {
            let addrs = resolve(&b.host, b.port, deadline, intr)?;
            let addr = pick(&addrs, None).expect("resolve returns at least one address");
            let s = me.make(Domain::for_address(addr))?;
            s.bind(&SockAddr::from(addr))
                .map_err(|e| Error::io(Phase::Bind, Some(&addr), e))?;
            me.sock.get_or_insert(|| Ok(s))?;
        }
        if let Some(c) = connect {
            me.connect(c, intr)?;
        }
        Ok(me)
    }

    fn make(&self, domain: Domain) -> Result<Socket> {
        let s = Socket::new(domain, Type::DGRAM.cloexec(), None)
            .map_err(|e| Error::io(Phase::Bind, None, e))?;
        s.set_nonblocking(true)
            .map_err(|e| Error::io(Phase::Bind, None, e))?;
        self.opts.apply(&s, domain)?;
        Ok(s)
    }

    fn family(&self) -> Option<Domain> {
        self.sock.get().ok().and_then(|s| s.domain().ok())
    }

    fn resolve_dest(&self, to: &HostPort, intr: &dyn Interrupt) -> Result<SocketAddr> {
        let addrs = resolve(&to.host, to.port, self.timeout.deadline(), intr)?;
        let fam = self.family();
        pick(&addrs, fam).ok_or_else(|| {
            Error::invalid(
                "address",
                format!(
                    "{to} has no address of this socket's family ({})",
                    if fam == Some(Domain::IPV6) {
                        "IPv6"
                    } else {
                        "IPv4"
                    }
                ),
            )
        })
    }

    fn sock_for(&self, dest: &SocketAddr) -> Result<Arc<Socket>> {
        self.sock
            .get_or_insert(|| self.make(Domain::for_address(*dest)))
    }

    /// Connect: fixes the peer, so `send`/`recv` work and ICMP port
    /// unreachable comes back as ConnectionRefusedError.
    pub fn connect(&self, to: &HostPort, intr: &dyn Interrupt) -> Result<()> {
        let dest = self.resolve_dest(to, intr)?;
        let s = self.sock_for(&dest)?;
        s.connect(&SockAddr::from(dest))
            .map_err(|e| Error::io(Phase::Connect, Some(&dest), e))?;
        *self.peer.lock().unwrap_or_else(|p| p.into_inner()) = Some(dest);
        Ok(())
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        *self.peer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sock
            .get()
            .ok()
            .and_then(|s| s.local_addr().ok())
            .and_then(|a| a.as_socket())
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.get()
    }

    pub fn set_timeout(&self, t: Option<Duration>) {
        self.timeout.set(t)
    }

    pub fn fileno(&self) -> RawFd {
        self.sock.fileno()
    }

    pub fn is_open(&self) -> bool {
        self.sock.is_open()
    }

    pub fn close(&self) -> bool {
        self.sock.close()
    }

    pub fn detach(&self) -> Result<Socket> {
        // The stdlib socket would see coalesced buffers as single datagrams.
        self.gro.off(self.sock.get().ok().as_deref());
        let s = self.sock.take()?;
        if self.timeout().is_none() {
            s.set_nonblocking(false)
                .map_err(|e| Error::io(Phase::Recv, None, e))?;
        }
        Ok(s)
    }

    fn send_raw(
        &self,
        s: &Socket,
        data: &[u8],
        dest: Option<&SocketAddr>,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        loop {
            let r = match dest {
                Some(d) => s.send_to(data, &SockAddr::from(*d)),
                None => s.send(data),
            };
            match r {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.check_open()?;
                    if !wait_fd(s.as_raw_fd(), libc::POLLOUT, deadline, intr)? {
                        return Err(Error::timeout(Phase::Send, dest.map(|d| d.to_string())));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => intr.check()?,
                Err(e) => {
                    return Err(Error::io(
                        Phase::Send,
                        dest.or(self.peer_addr().as_ref()),
                        e,
                    ))
                }
            }
        }
    }

    /// Send one datagram to `to`.
    pub fn send_to(&self, data: &[u8], to: &HostPort, intr: &dyn Interrupt) -> Result<usize> {
        let dest = self.resolve_dest(to, intr)?;
        let s = self.sock_for(&dest)?;
        self.send_raw(&s, data, Some(&dest), self.timeout.deadline(), intr)
    }

    /// Send one datagram to the connected peer.
    pub fn send(&self, data: &[u8], intr: &dyn Interrupt) -> Result<usize> {
        if self.peer_addr().is_none() {
            return Err(not_connected());
        }
        let s = self.sock.get()?;
        self.send_raw(&s, data, None, self.timeout.deadline(), intr)
    }

    /// The socket, for calls that need one to exist already: "closed"
    /// (EBADF) after `close()`, "no socket yet" before anything made it.
    fn bound(&self) -> Result<Arc<Socket>> {
        self.sock.get().map_err(|e| {
            if self.sock.was_closed() {
                e
            } else {
                not_bound()
            }
        })
    }

    /// `close()` from another thread shuts the socket down, after which
    /// poll reports it ready while recv keeps answering EAGAIN: without this
    /// check a call blocked in another thread would spin instead of failing.
    fn check_open(&self) -> Result<()> {
        if self.sock.is_open() {
            Ok(())
        } else {
            Err(Error::ClosedSocket)
        }
    }

    fn recv_raw(
        &self,
        s: &Socket,
        buf: &mut [u8],
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<(usize, SocketAddr)> {
        loop {
            let r = if self.gro.in_use() {
                self.gro
                    .recv_into(s, buf)
                    .map(|(n, a)| (n, SockAddr::from(a)))
            } else {
                // SAFETY: recv_from only writes initialised bytes into the
                // buffer; viewing an initialised [u8] as [MaybeUninit<u8>] is sound.
                let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
                s.recv_from(uninit)
            };
            match r {
                Ok((n, from)) => {
                    let from = from
                        .as_socket()
                        .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
                    return Ok((n, from));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.check_open()?;
                    if !wait_fd(s.as_raw_fd(), libc::POLLIN, deadline, intr)? {
                        return Err(Error::timeout(
                            Phase::Recv,
                            self.peer_addr().map(|p| p.to_string()),
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => intr.check()?,
                Err(e) => return Err(Error::io(Phase::Recv, self.peer_addr().as_ref(), e)),
            }
        }
    }

    /// One datagram of at most `bufsize` bytes (the rest of a longer one is
    /// discarded, as with the stdlib) and who sent it.
    pub fn recv_from(&self, bufsize: usize, intr: &dyn Interrupt) -> Result<(Vec<u8>, SocketAddr)> {
        let s = self.bound()?;
        let mut buf = vec![0u8; bufsize.min(MAX_DATAGRAM)];
        let (n, from) = self.recv_raw(&s, &mut buf, self.timeout.deadline(), intr)?;
        buf.truncate(n);
        Ok((buf, from))
    }

    /// Receive into the caller's buffer.
    pub fn recv_from_into(
        &self,
        buf: &mut [u8],
        intr: &dyn Interrupt,
    ) -> Result<(usize, SocketAddr)> {
        let s = self.bound()?;
        self.recv_raw(&s, buf, self.timeout.deadline(), intr)
    }

    /// Send `data` and wait `timeout` for one reply from the peer, resending
    /// up to `retries` times on silence. Datagrams from anyone else are
    /// ignored.
    pub fn request(
        &self,
        data: &[u8],
        to: Option<&HostPort>,
        timeout: Duration,
        retries: u32,
        bufsize: usize,
        intr: &dyn Interrupt,
    ) -> Result<Vec<u8>> {
        let dest = match to {
            Some(t) => Some(self.resolve_dest(t, intr)?),
            None if self.peer_addr().is_some() => None,
            None => {
                return Err(Error::invalid(
                    "address",
                    "an unconnected UdpSocket needs the address to send the request to",
                ))
            }
        };
        let s = match &dest {
            Some(d) => self.sock_for(d)?,
            None => self.sock.get()?,
        };
        let expect_from = dest.or(self.peer_addr());
        let mut buf = vec![0u8; bufsize.min(MAX_DATAGRAM)];
        for _ in 0..=retries {
            let deadline = Deadline::after(Some(timeout));
            self.send_raw(&s, data, dest.as_ref(), deadline, intr)?;
            loop {
                match self.recv_raw(&s, &mut buf, deadline, intr) {
                    Ok((n, from)) => {
                        if expect_from.is_none_or(|e| same_peer(&e, &from)) {
                            buf.truncate(n);
                            return Ok(buf);
                        }
                    }
                    Err(Error::Timeout { .. }) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Err(Error::timeout(
            Phase::Recv,
            expect_from.map(|a| a.to_string()),
        ))
    }

    /// Join a multicast group on `interface` (IPv4: the interface's address;
    /// IPv6: its name or index). The socket must be bound first.
    pub fn join_multicast(&self, group: IpAddr, interface: Option<&str>) -> Result<()> {
        self.multicast(group, interface, true)
    }

    pub fn leave_multicast(&self, group: IpAddr, interface: Option<&str>) -> Result<()> {
        self.multicast(group, interface, false)
    }

    fn multicast(&self, group: IpAddr, interface: Option<&str>, join: bool) -> Result<()> {
        if !group.is_multicast() {
            return Err(Error::invalid(
                "group",
                format!("{group} is not a multicast address"),
            ));
        }
        let s = self.bound()?;
        let r = match group {
            IpAddr::V4(g) => {
                let iface = match interface {
                    None => Ipv4Addr::UNSPECIFIED,
                    Some(t) => t.parse().map_err(|_| {
                        Error::invalid(
                            "interface",
                            format!("IPv4 multicast needs the interface's IPv4 address, got {t:?}"),
                        )
                    })?,
                };
                if join {
                    s.join_multicast_v4(&g, &iface)
                } else {
                    s.leave_multicast_v4(&g, &iface)
                }
            }
            IpAddr::V6(g) => {
                let index = match interface {
                    None => 0,
                    Some(t) => interface_index(t)?,
                };
                if join {
                    s.join_multicast_v6(&g, index)
                } else {
                    s.leave_multicast_v6(&g, index)
                }
            }
        };
        r.map_err(|e| Error::io(Phase::Option, Some(&SocketAddr::new(group, 0)), e))
    }

    /// Resolve many destinations, each distinct one once.
    pub fn resolve_many(&self, to: &[HostPort], intr: &dyn Interrupt) -> Result<Vec<SocketAddr>> {
        let mut seen: Vec<(&HostPort, SocketAddr)> = Vec::new();
        let mut out = Vec::with_capacity(to.len());
        for t in to {
            let a = match seen.iter().find(|(h, _)| *h == t) {
                Some((_, a)) => *a,
                None => {
                    let a = self.resolve_dest(t, intr)?;
                    seen.push((t, a));
                    a
                }
            };
            out.push(a);
        }
        Ok(out)
    }

    /// Send many datagrams in as few system calls as possible (sendmmsg);
    /// `None` sends to the connected peer. Returns how many were sent.
    pub fn send_many(
        &self,
        msgs: &[(&[u8], Option<SocketAddr>)],
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        let s = match msgs.iter().find_map(|(_, a)| *a) {
            Some(first) => self.sock_for(&first)?,
            None if msgs.is_empty() => return Ok(0),
            None => {
                if self.peer_addr().is_none() {
                    return Err(not_connected());
                }
                self.sock.get()?
            }
        };
        if self.peer_addr().is_none() && msgs.iter().any(|(_, a)| a.is_none()) {
            return Err(not_connected());
        }
        let deadline = self.timeout.deadline();
        batch::send_batch(
            &s,
            msgs,
            deadline,
            intr,
            &|| self.check_open(),
            Some(&self.gso),
        )
    }

    /// Wait for at least one datagram, then take up to `max` queued ones
    /// (recvmmsg), each at most `bufsize` bytes.
    pub fn recv_many(
        &self,
        max: usize,
        bufsize: usize,
        intr: &dyn Interrupt,
    ) -> Result<Vec<(Vec<u8>, SocketAddr)>> {
        let s = self.bound()?;
        self.gro.enable(&s);
        let deadline = self.timeout.deadline();
        let open = || self.check_open();
        batch::recv_batch(&s, max, bufsize, deadline, intr, &open, Some(&self.gro))
    }

    /// Private switch (tests, benchmarks): allow or forbid GSO on
    /// `send_many` and GRO on `recv_many`.
    pub fn set_offload(&self, gso: bool, gro: bool) {
        self.gso.set_enabled(gso);
        self.gro.set_enabled(self.sock.get().ok().as_deref(), gro);
    }

    /// (GSO trains sent, coalesced GRO buffers received) so far.
    pub fn offload_counts(&self) -> (u64, u64) {
        (self.gso.trains(), self.gro.coalesced())
    }

    pub fn options(&self) -> Result<Vec<(&'static str, OptValue)>> {
        let s = self.bound()?;
        let d = s.domain().map_err(|e| Error::io(Phase::Option, None, e))?;
        read_back(&s, Proto::Udp, d)
    }
}

pub fn same_peer(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn interface_index(name: &str) -> Result<u32> {
    if let Ok(i) = name.parse::<u32>() {
        return Ok(i);
    }
    let c = CString::new(name)
        .map_err(|_| Error::invalid("interface", format!("not an interface name: {name:?}")))?;
    // SAFETY: valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(Error::invalid(
            "interface",
            format!("no such interface: {name:?}"),
        ));
    }
    Ok(i)
}

pub(crate) fn not_connected() -> Error {
    Error::Io {
        phase: Phase::Send,
        address: None,
        source: io::Error::new(
            io::ErrorKind::NotConnected,
            "UdpSocket is not connected: use sendto() or connect=",
        ),
    }
}

pub(crate) fn not_bound() -> Error {
    Error::Io {
        phase: Phase::Recv,
        address: None,
        source: io::Error::new(
            io::ErrorKind::NotConnected,
            "UdpSocket has no socket yet: pass bind= or connect=, or send first",
        ),
    }
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
