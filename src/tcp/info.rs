//! The kernel's view of a TCP connection (Linux TCP_INFO): what
//! `TcpClient.tcp_info()` and the servers' byte counts read.

use std::io;
use std::os::fd::AsRawFd;

use socket2::Socket;

use crate::error::{Error, Phase, Result};

/// The kernel's view of a connection (Linux TCP_INFO), times in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: u8,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub min_rtt_us: u32,
    pub rto_us: u32,
    pub retransmits: u8,
    pub total_retrans: u32,
    pub lost: u32,
    pub unacked: u32,
    pub snd_cwnd: u32,
    pub snd_ssthresh: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub pmtu: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
}

/// TCP state names, indexed by `tcpi_state` (include/net/tcp_states.h).
pub const TCP_STATES: [&str; 13] = [
    "",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

/// TCP_INFO of any connected socket (servers read it for their byte counts).
pub fn socket_tcp_info(s: &Socket) -> Result<TcpInfo> {
    tcp_info(s)
}

#[cfg(target_os = "linux")]
fn tcp_info(s: &Socket) -> Result<TcpInfo> {
    // SAFETY: tcp_info is plain data; zeroed is valid.
    let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: ti/len describe a writable buffer of the right size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut ti as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::io(Phase::Option, None, io::Error::last_os_error()));
    }
    Ok(TcpInfo {
        state: ti.tcpi_state,
        rtt_us: ti.tcpi_rtt,
        rttvar_us: ti.tcpi_rttvar,
        min_rtt_us: ti.tcpi_min_rtt,
        rto_us: ti.tcpi_rto,
        retransmits: ti.tcpi_retransmits,
        total_retrans: ti.tcpi_total_retrans,
        lost: ti.tcpi_lost,
        unacked: ti.tcpi_unacked,
        snd_cwnd: ti.tcpi_snd_cwnd,
        snd_ssthresh: ti.tcpi_snd_ssthresh,
        snd_mss: ti.tcpi_snd_mss,
        rcv_mss: ti.tcpi_rcv_mss,
        pmtu: ti.tcpi_pmtu,
        bytes_acked: ti.tcpi_bytes_acked,
        bytes_received: ti.tcpi_bytes_received,
        segs_out: ti.tcpi_segs_out,
        segs_in: ti.tcpi_segs_in,
        notsent_bytes: ti.tcpi_notsent_bytes,
    })
}

#[cfg(not(target_os = "linux"))]
fn tcp_info(_s: &Socket) -> Result<TcpInfo> {
    Err(Error::Unsupported {
        option: "tcp_info",
        reason: "TCP_INFO is read on Linux only".into(),
    })
}
