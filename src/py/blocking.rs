//! The one helper for blocking calls: release the GIL for the whole
//! operation, and let the core's slice-wise waits run Python's signal
//! handlers between slices, so Ctrl-C raises KeyboardInterrupt promptly even
//! when the signal landed on another thread (DESIGN.md section 8).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::error::{Error, Result};
use crate::py::errors::to_pyerr;
use crate::wait::Interrupt;

thread_local! {
    /// Set by `socketkit.aio` on its helper threads (`py/aio_probe.rs`):
    /// a cancelled awaitable stops the blocking call within one slice.
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Run `f` with `flag` as this thread's cancel flag.
pub fn with_cancel<T>(flag: Arc<AtomicBool>, f: impl FnOnce() -> T) -> T {
    CANCEL.with(|c| *c.borrow_mut() = Some(flag));
    let r = f();
    CANCEL.with(|c| *c.borrow_mut() = None);
    r
}

/// Runs the interpreter's signal check; keeps what a handler raised.
pub struct PyInterrupt {
    pending: Mutex<Option<PyErr>>,
    cancel: Option<Arc<AtomicBool>>,
}

impl PyInterrupt {
    pub fn new() -> Self {
        PyInterrupt {
            pending: Mutex::new(None),
            cancel: CANCEL.with(|c| c.borrow().clone()),
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
        if self
            .cancel
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Err(Error::Interrupted);
        }
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
