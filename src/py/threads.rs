//! How server threads attach to the interpreter: once for the thread's whole
//! life, so each handler call only takes the GIL (`Python::attach` finds the
//! thread state and does not make and destroy one per call, which cost the
//! on_message server two thirds of its speed when measured).

use std::cell::Cell;
use std::sync::Arc;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::server::ThreadHooks;

thread_local! {
    /// What `enter` got from `PyGILState_Ensure`; `None` on threads it did not attach.
    static ATTACHED: Cell<Option<ffi::PyGILState_STATE>> = const { Cell::new(None) };
}

/// The hooks every server thread that may run Python starts and ends with.
pub fn python_hooks() -> ThreadHooks {
    ThreadHooks {
        start: Arc::new(enter),
        stop: Arc::new(leave),
        debug: Arc::new(crate::py::handlers::log_debug),
    }
}

/// Give this thread a Python thread state and release the GIL.
fn enter() {
    // SAFETY: the interpreter is initialized (it imported this module and a
    // Python call made the server). The state made by `PyGILState_Ensure`
    // stays this thread's own until `leave` deletes it; `PyEval_SaveThread`
    // only releases the GIL it took.
    unsafe {
        if ffi::Py_IsInitialized() == 0 {
            return;
        }
        let g = ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
        ATTACHED.with(|a| a.set(Some(g)));
    }
}

/// Undo `enter`: forget the thread in `threading`, delete its state.
fn leave() {
    let Some(g) = ATTACHED.with(Cell::take) else {
        return;
    };
    // SAFETY: always safe to call. After finalization the state is gone
    // with the interpreter; the process is ending.
    if unsafe { ffi::Py_IsInitialized() } == 0 {
        return;
    }
    // SAFETY: this thread holds the state `enter` made (counter 1, GIL
    // released). Ensure takes the GIL for it (counter 2); releasing LOCKED
    // keeps the GIL (counter 1); releasing what `enter` got deletes the
    // state and drops the GIL. pyo3's Ensure hangs the thread instead of
    // unwinding if the interpreter is finalizing.
    unsafe {
        ffi::PyGILState_Ensure();
        let _ = Python::try_attach(forget_dummy_thread);
        ffi::PyGILState_Release(ffi::PyGILState_STATE::PyGILState_LOCKED);
        ffi::PyGILState_Release(g);
    }
}

/// `threading.current_thread()` in a thread that `threading` did not start
/// (logging calls it for every record) registers a `_DummyThread` that
/// Python 3.11 never removes: `threading.active_count()` would count every
/// handler thread that ever logged. Remove ours as the thread ends.
fn forget_dummy_thread(py: Python<'_>) {
    let _ = (|| -> PyResult<()> {
        let threading = py.import("threading")?;
        let ident = threading.call_method0("get_ident")?;
        let active = threading.getattr("_active")?;
        let dummy = threading.getattr("_DummyThread")?;
        if let Ok(t) = active.get_item(&ident) {
            if t.is_instance(&dummy)? {
                active.del_item(&ident)?;
            }
        }
        Ok(())
    })();
}
