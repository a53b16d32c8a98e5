//! The one helper for blocking calls: release the GIL for the whole
//! operation, and let the core's slice-wise waits run Python's signal
//! handlers between slices, so Ctrl-C raises KeyboardInterrupt promptly even
//! when the signal landed on another thread (DESIGN.md section 8).

use std::sync::Mutex;

use pyo3::prelude::*;

use crate::error::{Error, Result};
use crate::py::errors::to_pyerr;
use crate::wait::Interrupt;

/// Runs the interpreter's signal check; keeps what a handler raised.
pub struct PyInterrupt {
    pending: Mutex<Option<PyErr>>,
}

impl PyInterrupt {
    pub fn new() -> Self {
        PyInterrupt {
            pending: Mutex::new(None),
        }
    }

    pub fn take(&self) -> Option<PyErr> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl Interrupt for PyInterrupt {
    fn check(&self) -> Result<()> {
        // Only the main thread runs handlers; elsewhere this is a cheap no-op
        // apart from taking the GIL once per slice.
        // A server thread still waiting after the interpreter is gone keeps
        // waiting (the process is ending) instead of panicking.
        Python::try_attach(|py| py.check_signals())
            .unwrap_or(Ok(()))
            .map_err(|e| {
                *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Error::Interrupted
            })
    }
}

/// Run `f` without the GIL; map its error to Python.
pub fn blocking<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&dyn Interrupt) -> Result<T> + Send,
{
    let intr = PyInterrupt::new();
    let r = py.detach(|| f(&intr));
    r.map_err(|e| to_pyerr(py, e, intr.take()))
}

/// Map a core error from a call that did not block.
pub fn core<T>(py: Python<'_>, r: Result<T>) -> PyResult<T> {
    r.map_err(|e| to_pyerr(py, e, None))
}
