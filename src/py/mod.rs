//! The binding layer: converts arguments, results and errors; no logic.

pub mod aio;
pub mod aio_bench;
pub mod aio_probe;
pub mod aio_reader;
pub mod aio_tcp;
pub mod aio_tls;
pub mod aio_udp;
pub mod args;
pub mod blocking;
pub mod errors;
pub mod handlers;
pub mod inline;
pub mod options;
pub mod ping;
pub mod probe;
pub mod probe_args;
pub mod server;
pub mod service;
pub mod tcp;
pub mod tcp_info;
pub mod threads;
pub mod tls;
pub mod tls_check;
pub mod udp;
pub mod waitfor;

use pyo3::prelude::*;

/// socketkit's compiled core. Import from ``socketkit``, not from here.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // pyo3 checks once per process, on the first attach from a detached
    // thread, that the interpreter is initialized, and panics if that first
    // check falls during finalization (a server thread attaching while a
    // script exits with a server running). Take the first check here, while
    // the interpreter is surely up.
    m.py().detach(|| Python::try_attach(|_| ()));
    m.add_class::<tcp::TcpClient>()?;
    m.add_class::<tcp::LineIterator>()?;
    aio::register(m)?;
    tls::register(m)?;
    m.add_class::<udp::UdpSocket>()?;
    m.add_class::<udp::UdpClient>()?;
    options::register(m)?;
    m.add_class::<server::TcpServer>()?;
    m.add_class::<server::UdpServer>()?;
    register_probe_core(m)?;
    m.add("DEFAULTS", defaults_dict(m.py())?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // pyo3 lists every name it adds in __all__; the `_`-prefixed bindings
    // are the Python layer's helpers, not API, so `from socketkit._core
    // import *` (and the stub's __all__) name only the public objects.
    let public: Vec<String> = m
        .index()?
        .iter()
        .map(|n| n.extract::<String>())
        .collect::<PyResult<Vec<_>>>()?
        .into_iter()
        .filter(|n| !n.starts_with('_') || n.starts_with("__"))
        .collect();
    m.setattr("__all__", public)?;
    Ok(())
}

/// `socketkit._probe_core`: the private helpers behind check, scan, tcping,
/// wait_for and the service and TLS checks, kept out of `_core` so each
/// module (and its stub) stays one readable size.
fn register_probe_core(core: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = core.py();
    let m = PyModule::new(py, "socketkit._probe_core")?;
    probe::register(&m)?;
    ping::register(&m)?;
    waitfor::register(&m)?;
    service::register(&m)?;
    tls_check::register(&m)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("socketkit._probe_core", &m)?;
    Ok(())
}

/// `_core.DEFAULTS`: the core's defaults (src/defaults.rs), which the
/// Python layer and the CLI read instead of writing their own.
fn defaults_dict(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    use crate::defaults::{Value, ALL};
    let d = pyo3::types::PyDict::new(py);
    for (name, v) in ALL {
        match v {
            Value::Bool(b) => d.set_item(name, b)?,
            Value::Int(i) => d.set_item(name, i)?,
            Value::Seconds(s) => d.set_item(name, s)?,
            Value::Text(t) => d.set_item(name, t)?,
        }
    }
    Ok(d)
}
