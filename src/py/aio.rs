//! The bridge between tokio futures and the Python event loop: every aio
//! awaitable is a future of the running loop (`loop.create_future()`), and
//! the work behind it is a task on the core's runtime (`aio::handle`).
//!
//! Completions do not call into Python from tokio's threads. A finished
//! task pushes its plain Rust result onto the bridge's queue and, when the
//! queue was empty, writes the bridge's eventfd once; the loop (which
//! watches that fd with `add_reader`) wakes and sets the results of the
//! whole batch on its own thread. Measured against pyo3-async-runtimes'
//! `tokio::future_into_py` (which takes the GIL on a blocking-pool thread
//! and calls `call_soon_threadsafe` per completion): see `benches/aio.py`
//! and `socketkit/aio.py`'s docstring for the figures.
//!
//! Cancellation: each future gets a done-callback that aborts its tokio
//! task when the future was cancelled (`task.cancel()`,
//! `asyncio.timeout`), which drops the Rust future and with it its sockets.
//!
//! One bridge (one eventfd) per thread, registered with whichever loop runs
//! on that thread: the fd count stays flat across `asyncio.run` calls.

use std::cell::RefCell;
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use tokio::task::AbortHandle;

use crate::aio;
use crate::error::{Error, Phase, Result};
use crate::py::errors::to_pyerr;

/// Builds the Python result on the loop's thread.
pub type Make = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send>;

/// A finished task's result, still Rust data.
pub enum Value {
    None,
    Bytes(Vec<u8>),
    Int(usize),
    Make(Make),
}

impl Value {
    fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        Ok(match self {
            Value::None => py.None().into_bound(py),
            Value::Bytes(b) => PyBytes::new(py, &b).into_any(),
            Value::Int(n) => n.into_pyobject(py)?.into_any(),
            Value::Make(f) => f(py)?,
        })
    }
}

struct Done {
    fut: Py<PyAny>,
    /// The future's CancelOnDone, taken off before the result is set: on
    /// success it would cost the loop one more callback per call.
    cb: Option<Py<PyAny>>,
    result: Result<Value>,
}

pub struct Bridge {
    /// `aio::forks()` when made: a forked child shares the parent's
    /// eventfd, so it makes its own bridge instead.
    forks: usize,
    efd: OwnedFd,
    queue: Mutex<Vec<Done>>,
    /// The loop the eventfd is registered with. A strong reference: the
    /// last loop of a thread stays alive (closed, it holds no fd), so its
    /// address can never be a new loop's.
    registered: Mutex<Option<Py<PyAny>>>,
}

thread_local! {
    static BRIDGE: RefCell<Option<Arc<Bridge>>> = const { RefCell::new(None) };
}

fn os_err(e: std::io::Error) -> Error {
    Error::io(Phase::Connect, None, e)
}

impl Bridge {
    fn new() -> Result<Self> {
        // SAFETY: eventfd returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(os_err(std::io::Error::last_os_error()));
        }
        Ok(Bridge {
            forks: aio::forks(),
            // SAFETY: fd is a fresh descriptor we own.
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
            queue: Mutex::new(Vec::new()),
            registered: Mutex::new(None),
        })
    }

    fn push(&self, d: Done) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let e = q.is_empty();
            q.push(d);
            e
        };
        if was_empty {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
            unsafe { libc::write(self.efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    fn drain(&self, py: Python<'_>) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer (EAGAIN is fine).
        unsafe { libc::read(self.efd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        let items = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
        for d in items {
            let fut = d.fut.bind(py);
            // A cancelled future was already answered (CancelledError).
            if fut
                .call_method0(intern!(py, "done"))
                .and_then(|v| v.is_truthy())
                .unwrap_or(true)
            {
                continue;
            }
            if let Some(cb) = &d.cb {
                let _ = fut.call_method1(intern!(py, "remove_done_callback"), (cb,));
            }
            let r = match d.result.map(|v| v.into_py(py)) {
                Ok(Ok(v)) => fut.call_method1(intern!(py, "set_result"), (v,)),
                Ok(Err(e)) => fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),)),
                Err(e) => {
                    let e = to_pyerr(py, e, None);
                    fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))
                }
            };
            // Only a closed loop refuses; nobody is waiting then.
            drop(r);
        }
    }

    /// Make sure the eventfd is watched by `lp`, the running loop.
    fn attach(self: &Arc<Self>, py: Python<'_>, lp: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut reg = self.registered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = reg.as_ref() {
            if old.as_ptr() == lp.as_ptr() {
                return Ok(());
            }
            let old = old.bind(py);
            if !old.call_method0("is_closed")?.is_truthy()? {
                let _ = old.call_method1("remove_reader", (self.efd.as_raw_fd(),));
            }
        }
        let drainer = Drainer {
            bridge: self.clone(),
        };
        lp.call_method1("add_reader", (self.efd.as_raw_fd(), drainer))?;
        *reg = Some(lp.clone().unbind());
        Ok(())
    }
}

#[pyclass(module = "socketkit._aio_core", frozen)]
struct Drainer {
    bridge: Arc<Bridge>,
}

#[pymethods]
impl Drainer {
    fn __call__(&self, py: Python<'_>) {
        self.bridge.drain(py);
    }
}

/// Aborts the task behind a future that was cancelled.
#[pyclass(module = "socketkit._aio_core", frozen)]
struct CancelOnDone {
    /// Set right after the spawn, before the loop can run any callback.
    abort: OnceLock<AbortHandle>,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut
            .call_method0(intern!(fut.py(), "cancelled"))?
            .is_truthy()?
        {
            if let Some(a) = self.abort.get() {
                a.abort();
            }
        }
        Ok(())
    }
}

/// Hands the result (or, if the task is dropped first, nothing) to the
/// loop's thread, where the future's reference is released too.
struct Slot {
    fut: Option<Py<PyAny>>,
    cb: Option<Py<PyAny>>,
    bridge: Arc<Bridge>,
}

impl Slot {
    fn finish(mut self, result: Result<Value>) {
        if let Some(fut) = self.fut.take() {
            let cb = self.cb.take();
            self.bridge.push(Done { fut, cb, result });
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take() {
            self.bridge.push(Done {
                fut,
                cb: self.cb.take(),
                result: Err(Error::Interrupted),
            });
        }
    }
}

/// The running loop and this thread's bridge, attached to it.
pub struct Ctx<'py> {
    pub lp: Bound<'py, PyAny>,
    bridge: Arc<Bridge>,
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The running loop; RuntimeError outside one, as asyncio raises.
pub fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    GET_RUNNING_LOOP
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
        })?
        .bind(py)
        .call0()
}

pub fn ctx(py: Python<'_>) -> PyResult<Ctx<'_>> {
    let lp = running_loop(py)?;
    let bridge = BRIDGE.with(|b| -> PyResult<Arc<Bridge>> {
        let mut b = b.borrow_mut();
        if let Some(br) = b.as_ref() {
            if br.forks == aio::forks() {
                return Ok(br.clone());
            }
        }
        let br = Arc::new(Bridge::new().map_err(|e| to_pyerr(py, e, None))?);
        *b = Some(br.clone());
        Ok(br)
    })?;
    bridge.attach(py, &lp)?;
    Ok(Ctx { lp, bridge })
}

impl<'py> Ctx<'py> {
    /// An awaitable for `fut`, run on the aio runtime.
    pub fn spawn<F>(&self, fut: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = Result<Value>> + Send + 'static,
    {
        let py = self.lp.py();
        let pyfut = self.lp.call_method0(intern!(py, "create_future"))?;
        let handle = aio::handle().map_err(|e| to_pyerr(py, e, None))?;
        let cb = Bound::new(
            py,
            CancelOnDone {
                abort: OnceLock::new(),
            },
        )?;
        pyfut.call_method1(intern!(py, "add_done_callback"), (&cb,))?;
        let slot = Slot {
            fut: Some(pyfut.clone().unbind()),
            cb: Some(cb.clone().into_any().unbind()),
            bridge: self.bridge.clone(),
        };
        let task = handle.spawn(async move {
            let r = fut.await;
            slot.finish(r);
        });
        let _ = cb.get().abort.set(task.abort_handle());
        Ok(pyfut)
    }

    /// An awaitable that is already done: the fast paths (a write the
    /// kernel took at once, bytes already buffered).
    pub fn ready(&self, v: PyResult<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        ready_on(&self.lp, v)
    }
}

/// A future of `lp` that is already done (see [`Ctx::ready`]).
pub fn ready_on<'py>(
    lp: &Bound<'py, PyAny>,
    v: PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = lp.py();
    let pyfut = lp.call_method0(intern!(py, "create_future"))?;
    match v {
        Ok(v) => pyfut.call_method1(intern!(py, "set_result"), (v,))?,
        Err(e) => pyfut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?,
    };
    Ok(pyfut)
}

/// The loop an object was made in; using it from another one is refused
/// (its futures and its bridge belong to the first).
pub struct Owner {
    /// Strong: an object keeps its loop alive, so the address compared
    /// below is never a later loop's.
    lp: Py<PyAny>,
    /// The loop is one of asyncio's own (it notes its thread in
    /// `_thread_id`): see [`Owner::check`].
    noted: bool,
    forks: usize,
}

impl Owner {
    pub fn of(lp: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Owner {
            lp: lp.clone().unbind(),
            noted: lp.hasattr(intern!(lp.py(), "_thread_id"))?,
            forks: aio::forks(),
        })
    }

    /// The owner's loop, for a call already [`Owner::check`]ed.
    pub fn lp<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.lp.bind(py)
    }

    /// What [`Owner::ctx`] checks, without the bridge. `asyncio`'s
    /// `get_running_loop()` makes a `getpid()` syscall on every call
    /// (Python 3.11); an asyncio loop says which thread runs it in
    /// `_thread_id` (set while `run_forever` runs, None after), and only
    /// one loop runs on a thread, so when that is this thread, it is the
    /// running loop. Any other case (uvloop, another loop, a forked
    /// child) asks asyncio.
    pub fn check(&self, py: Python<'_>, what: &str) -> PyResult<()> {
        if self.noted && self.forks == aio::forks() {
            let here = self
                .lp
                .bind(py)
                .getattr(intern!(py, "_thread_id"))
                .and_then(|t| t.extract::<Option<u64>>())
                .ok()
                .flatten()
                // SAFETY: pthread_self has no preconditions; on Linux it
                // is the ident `threading.get_ident()` returns.
                .is_some_and(|t| t == unsafe { libc::pthread_self() } as u64);
            if here {
                return Ok(());
            }
        }
        self.ctx(py, what).map(drop)
    }

    /// The context for a call on an object of this owner.
    pub fn ctx<'py>(&self, py: Python<'py>, what: &str) -> PyResult<Ctx<'py>> {
        let c = ctx(py)?;
        if c.lp.as_ptr() != self.lp.as_ptr() {
            return Err(PyRuntimeError::new_err(format!(
                "this {what} belongs to another event loop: make a new one in this loop \
                 (an aio object is bound to the loop it was created in)"
            )));
        }
        Ok(c)
    }
}

/// `socketkit._aio_core`: the aio classes and functions, in a module of
/// their own (with its own stub, `_aio_core.pyi`, so `_core.pyi` stays
/// readable) that `_core` puts in `sys.modules` when it loads.
pub fn register(core: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = core.py();
    let m = PyModule::new(py, "socketkit._aio_core")?;
    m.add_class::<crate::py::aio_tcp::AsyncTcpClient>()?;
    m.add_class::<crate::py::aio_tcp::AsyncLineIterator>()?;
    m.add_class::<crate::py::aio_udp::AsyncUdpSocket>()?;
    crate::py::aio_probe::register(&m)?;
    crate::py::aio_bench::register(&m)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("socketkit._aio_core", &m)?;
    Ok(())
}
