//! UDP generic receive offload (GRO, Linux 5.0+): with the `UDP_GRO`
//! socket option on, the kernel may hand over several datagrams of one
//! flow as one buffer, with their size in a `UDP_GRO` control message; on
//! loopback a train sent with GSO arrives whole. This file cuts such a
//! buffer back into its datagrams, so callers see exactly what was sent.
//!
//! Once on, every receive on the socket goes through here: a coalesced
//! buffer already queued in the kernel stays coalesced, and the datagrams
//! of one buffer that a call had no room for wait in `pending` for the next.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use socket2::Socket;

/// Not in the libc crate for glibc targets; <linux/udp.h>.
pub const UDP_GRO: libc::c_int = 104;

/// Each receive slot must hold a whole coalesced buffer (at most one IP
/// packet): a shorter slot would truncate it and lose datagrams.
const SLOT: usize = 65_536;
/// Slots per recvmmsg call: one slot may carry 64 datagrams or more, and
/// each costs 64 KiB of address space.
const MAX_SLOTS: usize = 64;

const UNTRIED: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

type Datagram = (Vec<u8>, SocketAddr);

#[derive(Debug, Default)]
pub struct Gro {
    state: AtomicU8,
    /// Set once GRO was on: from then on, receives parse control messages.
    used: AtomicBool,
    pending: Mutex<VecDeque<Datagram>>,
    coalesced: AtomicU64,
}

impl Gro {
    /// Turn GRO on, once per socket; false where the kernel has none
    /// (ENOPROTOOPT) or it was switched off.
    pub fn enable(&self, sock: &Socket) -> bool {
        match self.state.load(Ordering::Relaxed) {
            ON => true,
            OFF => false,
            _ => {
                let on = set(sock, true);
                self.state
                    .store(if on { ON } else { OFF }, Ordering::Relaxed);
                if on {
                    self.used.store(true, Ordering::Relaxed);
                }
                on
            }
        }
    }

    /// Private switch for tests and benchmarks: off (the option is cleared
    /// if it was set), or back to trying it on the next `recv_many`.
    pub fn set_enabled(&self, sock: Option<&Socket>, on: bool) {
        if !on {
            self.off(sock);
        } else {
            self.state.store(UNTRIED, Ordering::Relaxed);
        }
    }

    /// Clear the option, e.g. before the socket is handed to code that
    /// does not expect coalesced buffers.
    pub fn off(&self, sock: Option<&Socket>) {
        if let (Some(s), ON) = (sock, self.state.load(Ordering::Relaxed)) {
            set(s, false);
        }
        self.state.store(OFF, Ordering::Relaxed);
    }

    /// True once receives must go through `recv_some`.
    pub fn in_use(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    /// How many received buffers held more than one datagram.
    pub fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }

    /// Up to `max` datagrams, each cut to `bufsize` bytes: those left over
    /// from an earlier buffer first, else what one recvmmsg call brings.
    pub fn recv_some(
        &self,
        sock: &Socket,
        max: usize,
        bufsize: usize,
    ) -> io::Result<Vec<Datagram>> {
        let max = max.max(1);
        // Held across the call so that two threads cannot reorder a
        // buffer's datagrams; the call does not block (MSG_DONTWAIT).
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut got: Vec<Datagram> = if pending.is_empty() {
            let (got, coalesced) = recv_split(sock, max.min(MAX_SLOTS))?;
            if coalesced > 0 {
                self.coalesced.fetch_add(coalesced, Ordering::Relaxed);
            }
            got
        } else {
            pending.drain(..).collect()
        };
        if got.len() > max {
            // Ahead of anything still queued: `pending` was empty or all taken.
            for d in got.drain(max..).rev() {
                pending.push_front(d);
            }
        }
        for (d, _) in &mut got {
            d.truncate(bufsize);
        }
        Ok(got)
    }

    /// One datagram into `buf` (the rest of a longer one is dropped).
    pub fn recv_into(&self, sock: &Socket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (d, from) = self
            .recv_some(sock, 1, buf.len())?
            .pop()
            .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
        buf[..d.len()].copy_from_slice(&d);
        Ok((d.len(), from))
    }
}

fn set(sock: &Socket, on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let v: libc::c_int = on.into();
        // SAFETY: v is a valid c_int for the duration of the call.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_UDP,
                UDP_GRO,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        r == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (sock, on);
        false
    }
}

/// One recvmmsg call into `slots` 64 KiB slots; every buffer cut into its
/// datagrams by the size the kernel reports. Also returns how many
/// buffers held more than one datagram.
#[cfg(target_os = "linux")]
fn recv_split(sock: &Socket, slots: usize) -> io::Result<(Vec<Datagram>, u64)> {
    use std::os::fd::AsRawFd;
    // Uninitialised: the kernel writes before anything is read (see
    // batch::recv_some for why not zeroed).
    let mut block: Vec<u8> = Vec::with_capacity(slots * SLOT);
    let base = block.as_mut_ptr();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let words = space.div_ceil(8);
    let mut control: Vec<u64> = vec![0; words * slots];
    let mut names: Vec<socket2::SockAddrStorage> = (0..slots)
        .map(|_| socket2::SockAddrStorage::zeroed())
        .collect();
    let mut iovs: Vec<libc::iovec> = (0..slots)
        .map(|i| libc::iovec {
            // SAFETY: (i + 1) * SLOT <= the block's capacity.
            iov_base: unsafe { base.add(i * SLOT) } as *mut libc::c_void,
            iov_len: SLOT,
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(slots);
    for i in 0..slots {
        // SAFETY: a zeroed mmsghdr is valid; the pointers point into
        // vectors that are not resized and outlive the call.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_name = &mut names[i] as *mut _ as *mut libc::c_void;
        h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_hdr.msg_iov = &mut iovs[i];
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = control[i * words..].as_mut_ptr() as *mut libc::c_void;
        h.msg_hdr.msg_controllen = space as _;
        hdrs.push(h);
    }
    // SAFETY: valid array of `slots` mmsghdr; MSG_DONTWAIT: never blocks.
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            slots as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut coalesced = 0;
    for (i, h) in hdrs.iter().take(n as usize).enumerate() {
        let len = (h.msg_len as usize).min(SLOT);
        // SAFETY: the kernel wrote msg_len bytes at this slot.
        let data = unsafe { std::slice::from_raw_parts(base.add(i * SLOT), len) };
        let seg = match segment_size(&h.msg_hdr) {
            Some(s) if s > 0 && s < len => {
                coalesced += 1;
                s
            }
            _ => len.max(1),
        };
        // SAFETY: the kernel filled names[i] with msg_namelen bytes.
        let addr = unsafe {
            socket2::SockAddr::new(
                std::mem::replace(&mut names[i], socket2::SockAddrStorage::zeroed()),
                h.msg_hdr.msg_namelen,
            )
        }
        .as_socket()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        if data.is_empty() {
            out.push((Vec::new(), addr));
        }
        out.extend(data.chunks(seg).map(|c| (c.to_vec(), addr)));
    }
    Ok((out, coalesced))
}

#[cfg(not(target_os = "linux"))]
fn recv_split(sock: &Socket, _slots: usize) -> io::Result<(Vec<Datagram>, u64)> {
    Ok((crate::udp::batch::recv_some(sock, 1, SLOT)?, 0))
}

/// The segment size in a `UDP_GRO` control message, if there is one.
#[cfg(target_os = "linux")]
fn segment_size(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: the kernel set msg_controllen to the bytes it wrote into
    // msg_control; CMSG_FIRSTHDR/NXTHDR stay within them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                return usize::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}
