//! Awaitable probes: `socketkit.aio.check`, `scan`, `wait_for`, ... run the
//! blocking probe (the same Python function, so the same arguments,
//! results and errors) on a helper thread of their own, which ends with
//! the call. The probe waits without the GIL as always; the thread holds
//! it only to read the arguments and build the results, in the
//! interpreter's 5 ms turns, so the event loop keeps running. Cancelling
//! the awaitable sets the thread's cancel flag (`blocking::with_cancel`):
//! the probe stops within one wait slice (100 ms), closes its sockets
//! (the connect-scan engine through its Run's canceller, as on Ctrl-C) and
//! the thread ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::error::{Error, Phase};
use crate::py::aio::{ctx, Value};
use crate::py::blocking::with_cancel;
use crate::py::errors::to_pyerr;

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `await _aio_call(fn, *args, **kwargs)`: `fn(*args, **kwargs)` on a
/// helper thread; cancelling the awaitable cancels the call.
#[pyfunction]
#[pyo3(signature = (func, *args, **kwargs))]
pub fn _aio_call<'py>(
    py: Python<'py>,
    func: Py<PyAny>,
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let c = ctx(py)?;
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel::<PyResult<Py<PyAny>>>();
    let f2 = flag.clone();
    std::thread::Builder::new()
        .name("socketkit-aio-call".into())
        .spawn(move || {
            let r = Python::attach(|py| {
                with_cancel(f2, || {
                    func.bind(py)
                        .call(args.bind(py), kwargs.as_ref().map(|k| k.bind(py)))
                        .map(Bound::unbind)
                })
            });
            let _ = tx.send(r);
        })
        .map_err(|e| to_pyerr(py, Error::io(Phase::Connect, None, e), None))?;
    c.spawn(async move {
        let _cancel = SetOnDrop(flag);
        let r = rx.await.unwrap_or_else(|_| {
            Err(pyo3::exceptions::PyRuntimeError::new_err(
                "socketkit.aio helper thread ended without a result",
            ))
        });
        Ok(Value::Make(Box::new(move |py| r.map(|v| v.into_bound(py)))))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_aio_call, m)?)?;
    Ok(())
}
