//! Datagram batching: many datagrams per system call with sendmmsg(2) and
//! recvmmsg(2) on Linux, a plain loop elsewhere.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{SockAddr, Socket};

use crate::error::{Error, Phase, Result};
use crate::udp::gro::Gro;
use crate::udp::gso::{self, Gso};
use crate::udp::MAX_DATAGRAM;
use crate::wait::{wait_fd, Deadline, Interrupt};

/// The kernel caps one sendmmsg/recvmmsg call at UIO_MAXIOV messages.
const MAX_BATCH: usize = 1024;

/// Send every datagram (to its address, or the connected peer for `None`).
/// Returns how many were sent; waits while the send buffer is full.
/// With `gso`, runs of one size to one destination go out as GSO trains
/// where the kernel allows (see `gso`); the datagrams are the same.
///
/// `check_open` is asked after every wake-up: a socket shut down by
/// `close()` in another thread stays "ready" while sends keep failing with
/// EAGAIN, which would spin.
pub fn send_batch(
    sock: &Socket,
    msgs: &[(&[u8], Option<SocketAddr>)],
    deadline: Deadline,
    intr: &dyn Interrupt,
    check_open: &dyn Fn() -> Result<()>,
    gso: Option<&Gso>,
) -> Result<usize> {
    let names: Vec<Option<SockAddr>> = msgs.iter().map(|(_, a)| a.map(SockAddr::from)).collect();
    let mut sender = BatchSender::new(gso);
    let mut sent = 0;
    while sent < msgs.len() {
        match sender.send_front(sock, &msgs[sent..], &names[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_fd(sock.as_raw_fd(), libc::POLLOUT, deadline, intr)? {
                    return Err(Error::SendAll {
                        bytes_sent: sent,
                        source: Box::new(Error::timeout(Phase::Send, None)),
                    });
                }
                check_open()?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => intr.check()?,
            Err(e) => {
                return Err(Error::SendAll {
                    bytes_sent: sent,
                    source: Box::new(Error::io(Phase::Send, msgs[sent].1.as_ref(), e)),
                })
            }
        }
    }
    Ok(sent)
}

/// A batch's sends one system call at a time (the blocking `send_batch`
/// and `aio`'s `send_many` both drive it), GSO trains where the kernel
/// allows: a train the kernel refuses is sent again plain, and the refusal
/// is remembered once that plain call works (else the error is not GSO's).
pub struct BatchSender<'a> {
    gso: Option<&'a Gso>,
    refused: Option<(usize, i32)>,
}

impl<'a> BatchSender<'a> {
    pub fn new(gso: Option<&'a Gso>) -> Self {
        BatchSender { gso, refused: None }
    }

    /// One sendmmsg for the front of `msgs`: how many went out (0 after a
    /// refused train: call again, it goes plain).
    pub fn send_front(
        &mut self,
        sock: &Socket,
        msgs: &[(&[u8], Option<SocketAddr>)],
        names: &[Option<SockAddr>],
    ) -> io::Result<usize> {
        match send_front(sock, msgs, names, self.gso, self.refused.is_some()) {
            Ok(n) => {
                if let (Some(g), Some((seg, errno))) = (self.gso, self.refused.take()) {
                    g.refuse(seg, errno);
                }
                Ok(n)
            }
            Err((e, seg)) if seg > 0 && self.refused.is_none() => match gso::refusal(&e) {
                Some(errno) => {
                    self.refused = Some((seg, errno));
                    Ok(0)
                }
                None => Err(e),
            },
            Err((e, _)) => Err(e),
        }
    }
}

/// One system call for the front of a batch; on error, also the segment
/// size of the train that failed (0: a plain datagram).
fn send_front(
    sock: &Socket,
    msgs: &[(&[u8], Option<SocketAddr>)],
    names: &[Option<SockAddr>],
    gso: Option<&Gso>,
    plain: bool,
) -> std::result::Result<usize, (io::Error, usize)> {
    #[cfg(target_os = "linux")]
    if let Some(g) = gso {
        let below = if plain { 0 } else { g.below(sock) };
        if below > 0 {
            return gso::send_some(sock, msgs, names, below, g, MAX_BATCH);
        }
    }
    let _ = (gso, plain);
    let end = msgs.len().min(MAX_BATCH);
    send_some(sock, &msgs[..end], &names[..end]).map_err(|e| (e, 0))
}

#[cfg(target_os = "linux")]
pub fn send_some(
    sock: &Socket,
    msgs: &[(&[u8], Option<SocketAddr>)],
    names: &[Option<SockAddr>],
) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = msgs
        .iter()
        .map(|(d, _)| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(msgs.len());
    for (i, iov) in iovs.iter_mut().enumerate() {
        // SAFETY: a zeroed msghdr is valid; the fields set below point into
        // `iovs` and `names`, which outlive the call.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        if let Some(n) = &names[i] {
            h.msg_hdr.msg_name = n.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = n.len();
        }
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        hdrs.push(h);
    }
    // SAFETY: hdrs is a valid array of mmsghdr of the given length.
    let n = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(not(target_os = "linux"))]
pub fn send_some(
    sock: &Socket,
    msgs: &[(&[u8], Option<SocketAddr>)],
    names: &[Option<SockAddr>],
) -> io::Result<usize> {
    let (d, _) = msgs[0];
    match &names[0] {
        Some(n) => sock.send_to(d, n)?,
        None => sock.send(d)?,
    };
    Ok(1)
}

/// Wait for at least one datagram, then take up to `max` that are queued,
/// each truncated to `bufsize` bytes. With `gro` in use, coalesced buffers
/// are cut back into their datagrams (see `gro`).
/// `check_open` as for `send_batch`.
pub fn recv_batch(
    sock: &Socket,
    max: usize,
    bufsize: usize,
    deadline: Deadline,
    intr: &dyn Interrupt,
    check_open: &dyn Fn() -> Result<()>,
    gro: Option<&Gro>,
) -> Result<Vec<(Vec<u8>, SocketAddr)>> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let (max, bufsize) = (max.min(MAX_BATCH), bufsize.min(MAX_DATAGRAM));
    loop {
        let r = match gro {
            Some(g) if g.in_use() => g.recv_some(sock, max, bufsize),
            _ => recv_some(sock, max, bufsize),
        };
        match r {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_fd(sock.as_raw_fd(), libc::POLLIN, deadline, intr)? {
                    return Err(Error::timeout(Phase::Recv, None));
                }
                check_open()?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => intr.check()?,
            Err(e) => return Err(Error::io(Phase::Recv, None, e)),
        }
    }
}

#[cfg(target_os = "linux")]
pub fn recv_some(
    sock: &Socket,
    max: usize,
    bufsize: usize,
) -> io::Result<Vec<(Vec<u8>, SocketAddr)>> {
    // One uninitialised block for the whole batch: zeroing max * bufsize
    // bytes per call (e.g. 64 x 64 KiB) cost more than the system call.
    let total = max
        .checked_mul(bufsize)
        .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
    let mut block: Vec<u8> = Vec::with_capacity(total);
    let base = block.as_mut_ptr();
    let mut names: Vec<socket2::SockAddrStorage> = (0..max)
        .map(|_| socket2::SockAddrStorage::zeroed())
        .collect();
    let mut iovs: Vec<libc::iovec> = (0..max)
        .map(|i| libc::iovec {
            // SAFETY: i * bufsize + bufsize <= total, inside the allocation.
            iov_base: unsafe { base.add(i * bufsize) } as *mut libc::c_void,
            iov_len: bufsize,
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(max);
    for i in 0..max {
        // SAFETY: zeroed msghdr is valid; pointers below outlive the call.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_name = &mut names[i] as *mut _ as *mut libc::c_void;
        h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_hdr.msg_iov = &mut iovs[i];
        h.msg_hdr.msg_iovlen = 1;
        hdrs.push(h);
    }
    // SAFETY: valid array of mmsghdr; MSG_DONTWAIT: never blocks (we poll).
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            max as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let namelen = hdrs[i].msg_hdr.msg_namelen;
        let len = (hdrs[i].msg_len as usize).min(bufsize);
        // SAFETY: the kernel wrote msg_len (<= bufsize) bytes at this slot.
        let buf = unsafe { std::slice::from_raw_parts(base.add(i * bufsize), len) }.to_vec();
        // SAFETY: the kernel filled names[i] with msg_namelen bytes.
        let addr = unsafe {
            SockAddr::new(
                std::mem::replace(&mut names[i], socket2::SockAddrStorage::zeroed()),
                namelen,
            )
        };
        let addr = addr
            .as_socket()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        out.push((buf, addr));
    }
    Ok(out)
}

#[cfg(not(target_os = "linux"))]
pub fn recv_some(
    sock: &Socket,
    _max: usize,
    bufsize: usize,
) -> io::Result<Vec<(Vec<u8>, SocketAddr)>> {
    let mut buf = vec![0u8; bufsize];
    // SAFETY: viewing initialised bytes as MaybeUninit is sound.
    let uninit =
        unsafe { &mut *(buf.as_mut_slice() as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    let (n, a) = sock.recv_from(uninit)?;
    buf.truncate(n);
    Ok(vec![(
        buf,
        a.as_socket()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use socket2::{Domain, Type};
    use std::time::Duration;

    fn udp() -> Socket {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        s.bind(&SockAddr::from(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ))
        .unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    #[test]
    fn batch_round_trip_keeps_order_and_sizes() {
        let (a, b) = (udp(), udp());
        let to = b.local_addr().unwrap().as_socket().unwrap();
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 1 + i as usize]).collect();
        let msgs: Vec<(&[u8], Option<SocketAddr>)> =
            payloads.iter().map(|p| (p.as_slice(), Some(to))).collect();
        let d = Deadline::after(Some(Duration::from_secs(2)));
        assert_eq!(
            send_batch(&a, &msgs, d, &NoInterrupt, &|| Ok(()), None).unwrap(),
            100
        );
        let mut got = Vec::new();
        while got.len() < 100 {
            got.extend(recv_batch(&b, 64, 2048, d, &NoInterrupt, &|| Ok(()), None).unwrap());
        }
        let from = a.local_addr().unwrap().as_socket().unwrap();
        for (i, (data, src)) in got.iter().enumerate() {
            assert_eq!(data, &payloads[i]);
            assert_eq!(*src, from);
        }
    }

    #[test]
    fn recv_batch_times_out() {
        let s = udp();
        let e = recv_batch(
            &s,
            8,
            100,
            Deadline::after(Some(Duration::from_millis(50))),
            &NoInterrupt,
            &|| Ok(()),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }));
    }
}
