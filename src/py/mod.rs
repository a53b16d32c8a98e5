//! The binding layer: converts arguments, results and errors; no logic.

pub mod args;
pub mod blocking;
pub mod errors;
pub mod options;
pub mod ping;
pub mod probe;
pub mod probe_args;
pub mod server;
pub mod tcp;
pub mod threads;
pub mod udp;

use pyo3::prelude::*;

/// socketkit's compiled core. Import from ``socketkit``, not from here.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<tcp::TcpClient>()?;
    m.add_class::<tcp::LineIterator>()?;
    m.add_class::<udp::UdpSocket>()?;
    m.add_class::<udp::UdpClient>()?;
    m.add_class::<options::Keepalive>()?;
    m.add_class::<server::TcpServer>()?;
    m.add_class::<server::UdpServer>()?;
    probe::register(m)?;
    ping::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
