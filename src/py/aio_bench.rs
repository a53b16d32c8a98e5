//! Hidden functions that measure the bridge (`benches/aio.py`, "bridge"):
//! a trivial tokio future awaited through `py/aio.rs`, and (built with the
//! `bench-pyo3-async` feature only) the same through pyo3-async-runtimes'
//! `tokio::future_into_py`.

use pyo3::prelude::*;

use crate::py::aio::{ctx, Value};

/// `await _aio_bench_bridge(data)`: `data` back after one runtime hop.
#[pyfunction]
pub fn _aio_bench_bridge<'py>(py: Python<'py>, data: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
    ctx(py)?.spawn(async move {
        tokio::task::yield_now().await;
        Ok(Value::Bytes(data))
    })
}

/// The same through pyo3-async-runtimes, on the same runtime.
#[cfg(feature = "bench-pyo3-async")]
#[pyfunction]
pub fn _aio_bench_pyo3_async<'py>(py: Python<'py>, data: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
    let rt = crate::aio::runtime().map_err(|e| crate::py::errors::to_pyerr(py, e, None))?;
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(rt);
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        tokio::task::yield_now().await;
        Python::attach(|py| Ok(pyo3::types::PyBytes::new(py, &data).unbind()))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_aio_bench_bridge, m)?)?;
    #[cfg(feature = "bench-pyo3-async")]
    m.add_function(wrap_pyfunction!(_aio_bench_pyo3_async, m)?)?;
    Ok(())
}
