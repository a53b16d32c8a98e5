//! UDP generic segmentation offload (GSO, Linux 4.18+): a run of datagrams
//! of one size to one destination goes down the stack as one "train"
//! (one iovec per datagram, a `UDP_SEGMENT` control message with the size)
//! and is cut back into the same datagrams by the device or, on loopback,
//! by the receiving socket. The stack is walked once per train instead of
//! once per datagram; trains still go out in batches with sendmmsg.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use socket2::Socket;

use crate::udp::MAX_DATAGRAM;

/// Not in the libc crate for glibc targets; <linux/udp.h>.
pub const UDP_SEGMENT: libc::c_int = 103;

/// The kernel's UDP_MAX_SEGMENTS before 6.9 (128 since).
const MAX_SEGMENTS: usize = 64;
/// A train is one IP packet before segmentation: its payload must fit the
/// IPv6 length limit (65,535 - 40 - 8), which is also under IPv4's.
const MAX_TRAIN_BYTES: usize = 65_487;

const UNTRIED: usize = usize::MAX;

/// What a socket's kernel and routes allow, learned once per socket.
#[derive(Debug)]
pub struct Gso {
    /// Datagram sizes below this go in trains: `UNTRIED` until the kernel
    /// was asked, 0 when it has no GSO, lowered when a route refuses a size.
    below: AtomicUsize,
    trains: AtomicU64,
}

impl Default for Gso {
    fn default() -> Self {
        Gso {
            below: AtomicUsize::new(UNTRIED),
            trains: AtomicU64::new(0),
        }
    }
}

/// One message of a sendmmsg call: `len` datagrams, sent as a train of
/// `seg`-byte segments, or as one plain datagram when `seg` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Train {
    pub len: usize,
    pub seg: usize,
}

impl Gso {
    /// Sizes below the returned one may be sent as trains; asks the kernel
    /// on first use (getsockopt UDP_SEGMENT fails where GSO is missing).
    pub fn below(&self, sock: &Socket) -> usize {
        let b = self.below.load(Ordering::Relaxed);
        if b != UNTRIED {
            return b;
        }
        let b = if probe(sock) { MAX_DATAGRAM } else { 0 };
        self.below.store(b, Ordering::Relaxed);
        b
    }

    /// Remember that the kernel refused a train of `seg`-byte segments with
    /// `errno` while the same datagrams went out plain: EINVAL is a size the
    /// route cannot segment (over its MTU), anything else means no GSO here.
    pub fn refuse(&self, seg: usize, errno: i32) {
        if errno == libc::EINVAL {
            self.below.fetch_min(seg, Ordering::Relaxed);
        } else {
            self.below.store(0, Ordering::Relaxed);
        }
    }

    /// Private switch for tests and benchmarks: off, or back to probing.
    pub fn set_enabled(&self, on: bool) {
        self.below
            .store(if on { UNTRIED } else { 0 }, Ordering::Relaxed);
    }

    /// How many trains went out (each of two or more datagrams).
    pub fn trains(&self) -> u64 {
        self.trains.load(Ordering::Relaxed)
    }

    fn count(&self, sent: &[Train]) {
        let n = sent.iter().filter(|t| t.seg > 0).count() as u64;
        if n > 0 {
            self.trains.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Errors after which the same datagrams are retried plain: the kernel or
/// the route cannot segment (no checksum offload: EIO; size or socket
/// setting: EINVAL; no UDP_SEGMENT: ENOPROTOOPT/EOPNOTSUPP).
pub fn refusal(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error().filter(|c| {
        matches!(
            *c,
            libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP
        )
    })
}

fn probe(sock: &Socket) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: v and len are valid for writes of the sizes given.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_UDP,
                UDP_SEGMENT,
                &mut v as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        r == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = sock;
        false
    }
}

/// Cut the front of a batch into at most `max` messages: each run of
/// datagrams of one size to one destination (the last of a run may be
/// shorter, as the kernel allows) becomes a train when its size is below
/// `below`; everything else goes plain.
pub fn plan(
    msgs: &[(&[u8], Option<std::net::SocketAddr>)],
    below: usize,
    max: usize,
) -> Vec<Train> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < msgs.len() && out.len() < max {
        let (first, to) = msgs[i];
        let seg = first.len();
        let mut j = i + 1;
        if seg > 0 && seg < below {
            let mut total = seg;
            while j < msgs.len() && j - i < MAX_SEGMENTS {
                let (d, t) = msgs[j];
                // An empty datagram would vanish inside a train.
                if t != to || d.is_empty() || d.len() > seg || total + d.len() > MAX_TRAIN_BYTES {
                    break;
                }
                total += d.len();
                j += 1;
                if d.len() < seg {
                    break;
                }
            }
        }
        let len = j - i;
        out.push(Train {
            len,
            seg: if len > 1 { seg } else { 0 },
        });
        i = j;
    }
    out
}

/// One sendmmsg call for the front of `msgs`, trains where `below`
/// allows. Returns the datagrams sent, or the error with the segment size
/// of the first message (0: it was plain), which is the one that failed.
#[cfg(target_os = "linux")]
pub fn send_some(
    sock: &Socket,
    msgs: &[(&[u8], Option<std::net::SocketAddr>)],
    names: &[Option<socket2::SockAddr>],
    below: usize,
    gso: &Gso,
    max: usize,
) -> Result<usize, (std::io::Error, usize)> {
    use std::os::fd::AsRawFd;
    let trains = plan(msgs, below, max);
    let count: usize = trains.iter().map(|t| t.len).sum();
    let mut iovs: Vec<libc::iovec> = msgs[..count]
        .iter()
        .map(|(d, _)| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    let words = space.div_ceil(8);
    // u64 words: control messages must be aligned like cmsghdr.
    let mut control: Vec<u64> = vec![0; words * trains.len()];
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(trains.len());
    let mut at = 0;
    for (k, t) in trains.iter().enumerate() {
        // SAFETY: a zeroed mmsghdr is valid; the pointers set below point
        // into `iovs`, `names` and `control`, which are not moved or
        // resized before the call and outlive it.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        if let Some(n) = &names[at] {
            h.msg_hdr.msg_name = n.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = n.len();
        }
        // SAFETY: at + t.len <= count == iovs.len().
        h.msg_hdr.msg_iov = unsafe { iovs.as_mut_ptr().add(at) };
        h.msg_hdr.msg_iovlen = t.len as _;
        if t.seg > 0 {
            h.msg_hdr.msg_control = control[k * words..].as_mut_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_controllen = space as _;
            // SAFETY: msg_control points at `space` zeroed, aligned bytes,
            // room for one cmsghdr with a u16 payload.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, t.seg as u16);
            }
        }
        hdrs.push(h);
        at += t.len;
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
        return Err((std::io::Error::last_os_error(), trains[0].seg));
    }
    let sent = &trains[..n as usize];
    gso.count(sent);
    Ok(sent.iter().map(|t| t.len).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn shape(sizes: &[(usize, u16)], below: usize) -> Vec<(usize, usize)> {
        let bufs: Vec<Vec<u8>> = sizes.iter().map(|(n, _)| vec![1; *n]).collect();
        let msgs: Vec<(&[u8], Option<SocketAddr>)> = bufs
            .iter()
            .zip(sizes)
            .map(|(b, (_, p))| (b.as_slice(), Some(SocketAddr::from(([127, 0, 0, 1], *p)))))
            .collect();
        plan(&msgs, below, 1024)
            .into_iter()
            .map(|t| (t.len, t.seg))
            .collect()
    }

    #[test]
    fn runs_of_one_size_and_destination_become_trains() {
        let s = [(10, 1), (10, 1), (10, 1), (4, 1), (10, 1), (10, 2), (10, 2)];
        assert_eq!(shape(&s, MAX_DATAGRAM), [(4, 10), (1, 0), (2, 10)]);
    }

    #[test]
    fn longer_empty_or_refused_sizes_go_plain() {
        assert_eq!(shape(&[(10, 1), (11, 1)], MAX_DATAGRAM), [(1, 0), (1, 0)]);
        assert_eq!(shape(&[(0, 1), (0, 1)], MAX_DATAGRAM), [(1, 0), (1, 0)]);
        assert_eq!(shape(&[(10, 1), (0, 1)], MAX_DATAGRAM), [(1, 0), (1, 0)]);
        assert_eq!(shape(&[(10, 1), (10, 1)], 10), [(1, 0), (1, 0)]);
        assert_eq!(shape(&[(10, 1), (10, 1)], 0), [(1, 0), (1, 0)]);
    }

    #[test]
    fn trains_stay_within_segment_and_byte_limits() {
        let s = vec![(100, 1); 130];
        assert_eq!(shape(&s, MAX_DATAGRAM), [(64, 100), (64, 100), (2, 100)]);
        let s = vec![(30_000, 1); 3];
        assert_eq!(shape(&s, MAX_DATAGRAM), [(2, 30_000), (1, 0)]);
    }
}
