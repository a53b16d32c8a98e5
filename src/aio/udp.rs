//! A UDP socket whose sends and receives are tokio futures: the same
//! address rules as `udp::UdpSock` (`pick` chooses the family; with neither
//! `bind` nor `connect` the socket is made by the first `sendto`, in the
//! destination's family) and the same batching (`udp::batch`) once the
//! reactor says the socket is ready.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;

use crate::addr::HostPort;
use crate::error::{Error, Phase, Result};
use crate::options::{read_back, OptValue, Proto, SocketOptions};
use crate::sock::Timeout;
use crate::udp::batch::{recv_some, BatchSender};
use crate::udp::gso::Gso;
use crate::udp::socket::{not_bound, not_connected, pick, same_peer};
use crate::udp::MAX_DATAGRAM;

use super::connect::resolve_async;
use super::within;

type Fd = Arc<AsyncFd<Socket>>;

pub struct AsyncUdp {
    sock: Mutex<Option<Fd>>,
    closed: std::sync::atomic::AtomicBool,
    /// Wakes the calls in flight when `close()` runs, so they end and let
    /// go of the fd.
    shut: Notify,
    timeout: Timeout,
    opts: SocketOptions,
    peer: Mutex<Option<SocketAddr>>,
    /// What the kernel allows for `send_many`'s GSO trains (as `UdpSocket`).
    gso: Gso,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AsyncUdp {
    pub async fn create(
        bind: Option<&HostPort>,
        connect: Option<&HostPort>,
        opts: SocketOptions,
        timeout: Option<Duration>,
    ) -> Result<Self> {
        opts.validate(Proto::Udp)?;
        let me = AsyncUdp {
            sock: Mutex::new(None),
            closed: false.into(),
            shut: Notify::new(),
            timeout: Timeout::new(timeout),
            opts,
            peer: Mutex::new(None),
            gso: Gso::default(),
        };
        if let Some(b) = bind {
            let addrs = resolve_async(b, me.timeout.deadline()).await?;
            let addr = pick(&addrs, None).ok_or_else(|| Error::invalid("bind", "no address"))?;
            let s = me.make(Domain::for_address(addr))?;
            s.bind(&SockAddr::from(addr))
                .map_err(|e| Error::io(Phase::Bind, Some(&addr), e))?;
            me.install(s)?;
        }
        if let Some(c) = connect {
            me.connect(c).await?;
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

    fn install(&self, s: Socket) -> Result<Fd> {
        let mut g = lock(&self.sock);
        if let Some(f) = g.as_ref() {
            return Ok(f.clone());
        }
        if !self.is_open() {
            return Err(Error::ClosedSocket);
        }
        // SAFETY: the Socket owns its fd, and the AsyncFd owns the Socket:
        // the fd is neither replaced nor closed while it is registered.
        let f =
            unsafe { AsyncFd::register_with_interest(s, Interest::READABLE | Interest::WRITABLE) };
        let f = Arc::new(f.map_err(|e| Error::io(Phase::Bind, None, e.into()))?);
        *g = Some(f.clone());
        Ok(f)
    }

    fn current(&self) -> Result<Option<Fd>> {
        if !self.is_open() {
            return Err(Error::ClosedSocket);
        }
        Ok(lock(&self.sock).clone())
    }

    fn bound(&self) -> Result<Fd> {
        self.current()?.ok_or_else(not_bound)
    }

    fn family(&self) -> Option<Domain> {
        lock(&self.sock)
            .as_ref()
            .and_then(|f| f.get_ref().domain().ok())
    }

    async fn resolve_dest(&self, to: &HostPort) -> Result<SocketAddr> {
        let addrs = resolve_async(to, self.timeout.deadline()).await?;
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

    fn sock_for(&self, dest: &SocketAddr) -> Result<Fd> {
        match self.current()? {
            Some(f) => Ok(f),
            None => self.install(self.make(Domain::for_address(*dest))?),
        }
    }

    pub async fn connect(&self, to: &HostPort) -> Result<()> {
        let dest = self.resolve_dest(to).await?;
        let f = self.sock_for(&dest)?;
        f.get_ref()
            .connect(&SockAddr::from(dest))
            .map_err(|e| Error::io(Phase::Connect, Some(&dest), e))?;
        *lock(&self.peer) = Some(dest);
        Ok(())
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        *lock(&self.peer)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        lock(&self.sock)
            .as_ref()
            .and_then(|f| f.get_ref().local_addr().ok())
            .and_then(|a| a.as_socket())
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.get()
    }

    pub fn set_timeout(&self, t: Option<Duration>) {
        self.timeout.set(t)
    }

    pub fn fileno(&self) -> RawFd {
        lock(&self.sock)
            .as_ref()
            .map_or(-1, |f| f.get_ref().as_raw_fd())
    }

    pub fn is_open(&self) -> bool {
        !self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Close; an operation in flight keeps the fd until it ends (the
    /// awaitable that was cancelled or timed out drops it).
    pub fn close(&self) -> bool {
        let taken = {
            let mut g = lock(&self.sock);
            let was_open = self.is_open();
            self.closed
                .store(true, std::sync::atomic::Ordering::Release);
            g.take().map(|_| ()).or(was_open.then_some(()))
        };
        self.shut.notify_waiters();
        taken.is_some()
    }

    /// `fut` (a readiness wait), or `ClosedSocket` as soon as `close()` runs.
    async fn or_closed<T>(
        &self,
        fut: impl std::future::Future<Output = io::Result<T>>,
    ) -> Result<io::Result<T>> {
        let shut = self.shut.notified();
        tokio::pin!(shut);
        shut.as_mut().enable();
        if !self.is_open() {
            return Err(Error::ClosedSocket);
        }
        tokio::select! {
            biased;
            r = fut => Ok(r),
            _ = shut => Err(Error::ClosedSocket),
        }
    }

    pub fn options(&self) -> Result<Vec<(&'static str, OptValue)>> {
        let f = self.bound()?;
        let s = f.get_ref();
        let d = s.domain().map_err(|e| Error::io(Phase::Option, None, e))?;
        read_back(s, Proto::Udp, d)
    }

    async fn send_raw(&self, f: &Fd, data: &[u8], to: Option<&SocketAddr>) -> Result<usize> {
        let name = to.map(|a| SockAddr::from(*a));
        loop {
            let mut g = self
                .or_closed(f.writable())
                .await?
                .map_err(|e| Error::io(Phase::Send, to, e))?;
            let r = g.try_io(|s| match &name {
                Some(n) => s.get_ref().send_to(data, n),
                None => s.get_ref().send(data),
            });
            match r {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => {
                    return Err(Error::io(Phase::Send, to.or(self.peer_addr().as_ref()), e))
                }
                Err(_would_block) => {}
            }
        }
    }

    async fn recv_raw(&self, f: &Fd, bufsize: usize) -> Result<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; bufsize.min(MAX_DATAGRAM)];
        loop {
            let mut g = self
                .or_closed(f.readable())
                .await?
                .map_err(|e| Error::io(Phase::Recv, None, e))?;
            let r = g.try_io(|s| {
                // SAFETY: recv_from only writes initialised bytes; viewing an
                // initialised [u8] as [MaybeUninit<u8>] is sound.
                let uninit = unsafe { &mut *(&mut buf[..] as *mut [u8] as *mut [MaybeUninit<u8>]) };
                s.get_ref().recv_from(uninit)
            });
            match r {
                Ok(Ok((n, from))) => {
                    buf.truncate(n);
                    let from = from
                        .as_socket()
                        .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
                    return Ok((buf, from));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(Error::io(Phase::Recv, self.peer_addr().as_ref(), e)),
                Err(_would_block) => {}
            }
        }
    }

    pub async fn send_to(&self, data: &[u8], to: &HostPort) -> Result<usize> {
        let dest = self.resolve_dest(to).await?;
        let f = self.sock_for(&dest)?;
        within(
            self.timeout(),
            Phase::Send,
            Some(dest),
            self.send_raw(&f, data, Some(&dest)),
        )
        .await
    }

    pub async fn send(&self, data: &[u8]) -> Result<usize> {
        if self.peer_addr().is_none() {
            return Err(not_connected());
        }
        let f = self.bound()?;
        within(
            self.timeout(),
            Phase::Send,
            self.peer_addr(),
            self.send_raw(&f, data, None),
        )
        .await
    }

    pub async fn recv_from(&self, bufsize: usize) -> Result<(Vec<u8>, SocketAddr)> {
        let f = self.bound()?;
        within(
            self.timeout(),
            Phase::Recv,
            self.peer_addr(),
            self.recv_raw(&f, bufsize),
        )
        .await
    }

    /// Send `data`, wait `timeout` for one reply from the peer, resending
    /// up to `retries` times on silence; others' datagrams are ignored.
    pub async fn request(
        &self,
        data: &[u8],
        to: Option<&HostPort>,
        timeout: Duration,
        retries: u32,
        bufsize: usize,
    ) -> Result<Vec<u8>> {
        let dest = match to {
            Some(t) => Some(self.resolve_dest(t).await?),
            None if self.peer_addr().is_some() => None,
            None => {
                return Err(Error::invalid(
                    "address",
                    "an unconnected UdpSocket needs the address to send the request to",
                ))
            }
        };
        let f = match &dest {
            Some(d) => self.sock_for(d)?,
            None => self.bound()?,
        };
        let expect_from = dest.or(self.peer_addr());
        for _ in 0..=retries {
            let attempt = async {
                self.send_raw(&f, data, dest.as_ref()).await?;
                loop {
                    let (buf, from) = self.recv_raw(&f, bufsize).await?;
                    if expect_from.is_none_or(|e| same_peer(&e, &from)) {
                        return Ok(buf);
                    }
                }
            };
            match within(Some(timeout), Phase::Recv, expect_from, attempt).await {
                Err(Error::Timeout { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::timeout(
            Phase::Recv,
            expect_from.map(|a| a.to_string()),
        ))
    }

    /// [`send_many`](Self::send_many) to addresses still to resolve, each
    /// distinct one once.
    pub async fn send_many_to(&self, msgs: Vec<(Vec<u8>, Option<HostPort>)>) -> Result<usize> {
        let mut seen: Vec<(HostPort, SocketAddr)> = Vec::new();
        let mut out = Vec::with_capacity(msgs.len());
        for (d, to) in msgs {
            let a = match to {
                None => None,
                Some(t) => match seen.iter().find(|(h, _)| *h == t) {
                    Some((_, a)) => Some(*a),
                    None => {
                        let a = self.resolve_dest(&t).await?;
                        seen.push((t, a));
                        Some(a)
                    }
                },
            };
            out.push((d, a));
        }
        self.send_many(&out).await
    }

    /// GSO trains `send_many` sent (tests: which path ran).
    pub fn gso_trains(&self) -> u64 {
        self.gso.trains()
    }

    /// Send every datagram with sendmmsg (GSO trains where the kernel allows), waiting while the buffer is full.
    pub async fn send_many(&self, msgs: &[(Vec<u8>, Option<SocketAddr>)]) -> Result<usize> {
        let f = match msgs.iter().find_map(|(_, a)| *a) {
            Some(first) => self.sock_for(&first)?,
            None if msgs.is_empty() => return Ok(0),
            None => self.bound()?,
        };
        if self.peer_addr().is_none() && msgs.iter().any(|(_, a)| a.is_none()) {
            return Err(not_connected());
        }
        let refs: Vec<(&[u8], Option<SocketAddr>)> =
            msgs.iter().map(|(d, a)| (d.as_slice(), *a)).collect();
        let names: Vec<Option<SockAddr>> =
            refs.iter().map(|(_, a)| a.map(SockAddr::from)).collect();
        let mut sent = 0;
        let mut sender = BatchSender::new(Some(&self.gso));
        let work = async {
            while sent < refs.len() {
                let mut g = self
                    .or_closed(f.writable())
                    .await?
                    .map_err(|e| Error::io(Phase::Send, None, e))?;
                match g.try_io(|s| sender.send_front(s.get_ref(), &refs[sent..], &names[sent..])) {
                    Ok(Ok(n)) => sent += n,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) => return Err(Error::io(Phase::Send, refs[sent].1.as_ref(), e)),
                    Err(_would_block) => {}
                }
            }
            Ok(())
        };
        let r = within(self.timeout(), Phase::Send, None, work).await;
        match r {
            Ok(()) => Ok(sent),
            Err(e) => Err(Error::SendAll {
                bytes_sent: sent,
                source: Box::new(e),
            }),
        }
    }

    /// Wait for one datagram, then take up to `max` queued ones (recvmmsg).
    pub async fn recv_many(
        &self,
        max: usize,
        bufsize: usize,
    ) -> Result<Vec<(Vec<u8>, SocketAddr)>> {
        let f = self.bound()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let work = async {
            loop {
                let mut g = self
                    .or_closed(f.readable())
                    .await?
                    .map_err(|e| Error::io(Phase::Recv, None, e))?;
                match g.try_io(|s| recv_some(s.get_ref(), max.min(1024), bufsize.min(MAX_DATAGRAM)))
                {
                    Ok(Ok(v)) => return Ok(v),
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) => return Err(Error::io(Phase::Recv, None, e)),
                    Err(_would_block) => {}
                }
            }
        };
        within(self.timeout(), Phase::Recv, self.peer_addr(), work).await
    }
}
