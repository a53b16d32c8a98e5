//! `tcp_info()` as a dict, for `TcpClient` and `aio.AsyncTcpClient`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::tcp::{TcpInfo, TCP_STATES};

/// The kernel's TCP_INFO with the keys `TcpClient.tcp_info` documents
/// (times in milliseconds).
pub fn tcp_info_dict<'py>(py: Python<'py>, i: &TcpInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let ms = |us: u32| us as f64 / 1000.0;
    d.set_item(
        "state",
        TCP_STATES
            .get(i.state as usize)
            .copied()
            .unwrap_or("UNKNOWN"),
    )?;
    d.set_item("rtt_ms", ms(i.rtt_us))?;
    d.set_item("rttvar_ms", ms(i.rttvar_us))?;
    d.set_item("min_rtt_ms", ms(i.min_rtt_us))?;
    d.set_item("rto_ms", ms(i.rto_us))?;
    d.set_item("retransmits", i.retransmits)?;
    d.set_item("total_retrans", i.total_retrans)?;
    d.set_item("lost", i.lost)?;
    d.set_item("unacked", i.unacked)?;
    d.set_item("cwnd", i.snd_cwnd)?;
    d.set_item("ssthresh", i.snd_ssthresh)?;
    d.set_item("mss", i.snd_mss)?;
    d.set_item("rcv_mss", i.rcv_mss)?;
    d.set_item("pmtu", i.pmtu)?;
    d.set_item("bytes_acked", i.bytes_acked)?;
    d.set_item("bytes_received", i.bytes_received)?;
    d.set_item("segs_out", i.segs_out)?;
    d.set_item("segs_in", i.segs_in)?;
    d.set_item("notsent_bytes", i.notsent_bytes)?;
    Ok(d)
}
