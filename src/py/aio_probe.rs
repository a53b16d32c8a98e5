//! Awaitable probes. Each runs the blocking probe of the core on a helper
//! thread of its own, which ends with the call; cancelling the awaitable
//! sets the thread's cancel flag, so the probe stops within one wait slice
//! (100 ms), closes its sockets (the connect-scan engine through its Run's
//! canceller, as on Ctrl-C) and the thread ends.
//!
//! Two shapes:
//! - `check`, `check_many`, `scan`, `wait_for`, `banner`, `udp_probe`: the
//!   arguments are read and the results built on the loop's thread (a
//!   scan's in chunks, [`AioResults`]); the helper thread is pure Rust and
//!   never takes the GIL. Through the shape below (each thread taking the
//!   GIL to read its arguments and build its results), 100 concurrent
//!   `wait_for` or one full scan left the loop waiting for the GIL 60-100
//!   ms on a loaded 2-core machine; this way the longest gap was ~20 ms.
//! - `_aio_call`: any blocking Python function (`tcping`, the iterators),
//!   so the results are the blocking ones by construction. The thread
//!   holds the GIL only to read the arguments and build the results, in
//!   the interpreter's 5 ms turns.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::error::{Error, Phase, Result as CoreResult};
use crate::probe::waitfor::{self, Readiness};
use crate::probe::{
    banner as banner_core, run_all, udp, Config, Outcome, Plan, TargetResult, Timings,
};
use crate::py::aio::{ctx, Value};
use crate::py::args;
use crate::py::blocking::with_cancel;
use crate::py::errors::to_pyerr;
use crate::py::probe::{outcome_tuple, Tuples};
use crate::py::probe_args::{
    addr_control, bytes_arg, check_job, port_arg, progress_arg, scan_job, target_arg, targets_job,
    wait_targets_arg,
};
use crate::wait::Interrupt;

pub(crate) struct SetOnDrop(pub(crate) Arc<AtomicBool>);

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

/// Flag-driven interrupt of a pure-Rust helper thread.
pub(crate) struct Flag(pub(crate) Arc<AtomicBool>);

impl Interrupt for Flag {
    fn check(&self) -> CoreResult<()> {
        if self.0.load(Ordering::Relaxed) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// `run` on a helper thread with no GIL; `make` builds the Python result
/// on the loop's thread.
fn off_thread<'py, T, R, M>(py: Python<'py>, run: R, make: M) -> PyResult<Bound<'py, PyAny>>
where
    T: Send + 'static,
    R: FnOnce(&dyn Interrupt) -> CoreResult<T> + Send + 'static,
    M: for<'a> FnOnce(Python<'a>, T) -> PyResult<Bound<'a, PyAny>> + Send + 'static,
{
    let c = ctx(py)?;
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel::<CoreResult<T>>();
    let intr = Flag(flag.clone());
    std::thread::Builder::new()
        .name("socketkit-aio-probe".into())
        .spawn(move || {
            let _ = tx.send(run(&intr));
        })
        .map_err(|e| to_pyerr(py, Error::io(Phase::Connect, None, e), None))?;
    c.spawn(async move {
        let _cancel = SetOnDrop(flag);
        let v = rx.await.unwrap_or(Err(Error::Interrupted))?;
        Ok(Value::Make(Box::new(move |py| make(py, v))))
    })
}

/// `await _aio_wait_for(...)`: `_core._wait_for` as an awaitable.
#[pyfunction]
#[pyo3(signature = (targets, port, *, timeout, interval, send, expect))]
pub fn _aio_wait_for<'py>(
    py: Python<'py>,
    targets: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    interval: &Bound<'py, PyAny>,
    send: Option<&Bound<'py, PyAny>>,
    expect: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let port = port_arg(port)?;
    let targets = wait_targets_arg(targets, port)?;
    let timeout = args::timeout("timeout", timeout)?;
    let interval = args::seconds("interval", interval)?.max(Duration::from_millis(1));
    let ready = Readiness {
        send: bytes_arg("send", send)?,
        expect: bytes_arg("expect", expect)?,
    };
    off_thread(
        py,
        move |intr| waitfor::wait_for(&targets, &ready, timeout, interval, intr),
        |py, d| Ok(d.as_secs_f64().into_pyobject(py)?.into_any()),
    )
}

/// `await _aio_banner(...)`: `_core._banner` as an awaitable.
#[pyfunction]
#[pyo3(signature = (target, port, *, send, timeout, max_bytes, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn _aio_banner<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    send: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    max_bytes: &Bound<'py, PyAny>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let ctl = addr_control(family, source_address, false)?;
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let send = bytes_arg("send", send)?;
    let timeout = args::timeout("timeout", timeout)?;
    let max_bytes = args::size("max_bytes", max_bytes)?;
    if max_bytes == 0 {
        return Err(PyValueError::new_err("max_bytes must be at least 1, got 0"));
    }
    off_thread(
        py,
        move |intr| banner_core::banner(&target, send.as_deref(), timeout, max_bytes, &ctl, intr),
        |py, data| Ok(PyBytes::new(py, &data).into_any()),
    )
}

/// `await _aio_udp_probe(...)`: `_core._udp_probe` as an awaitable.
#[pyfunction]
#[pyo3(signature = (target, port, payload, *, timeout, retries, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn _aio_udp_probe<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    payload: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    retries: &Bound<'py, PyAny>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let ctl = addr_control(family, source_address, false)?;
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let payload = bytes_arg("payload", payload)?.unwrap_or_default();
    let timeout = args::timeout("timeout", timeout)?;
    let retries = args::size("retries", retries)?;
    let host = target.host.clone();
    off_thread(
        py,
        move |intr| udp::udp_probe(&target, &payload, timeout, retries, &ctl, intr),
        move |py, (addr, o): (SocketAddr, Outcome)| {
            let host = PyString::new(py, &host);
            let address = PyString::new(py, &addr.ip().to_string());
            let timings = Timings {
                total: o.rtt,
                ..Timings::default()
            };
            Ok(
                outcome_tuple(py, host, Some(address), addr.port(), "udp", &o, &timings)?
                    .into_any(),
            )
        },
    )
}

/// The finished results of an awaited `scan`/`check_many`, handed to
/// Python in chunks (`take`) so that building 65,535 result objects never
/// holds the loop for long: `aio.py` converts one chunk per loop turn.
#[pyclass(module = "socketkit._aio_core", frozen)]
pub struct AioResults {
    plan: Plan,
    results: Vec<TargetResult>,
    next: Mutex<usize>,
}

#[pymethods]
impl AioResults {
    /// The next `n` result tuples; an empty list at the end.
    fn take<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let end = (*next + n).min(self.results.len());
        let mut t = Tuples::new(py, &self.plan);
        let items = self.results[*next..end]
            .iter()
            .map(|r| t.make(&self.plan, r, "tcp"))
            .collect::<PyResult<Vec<_>>>()?;
        *next = end;
        PyList::new(py, items)
    }

    fn __len__(&self) -> usize {
        self.results.len()
    }
}

/// Run a plan on a pure-Rust helper thread; `progress(done, total)` is
/// called there with the GIL, and what it raises ends the run.
fn run_plan_async<'py, P>(
    py: Python<'py>,
    make_plan: P,
    cfg: Config,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>>
where
    P: FnOnce(&dyn Interrupt) -> CoreResult<Plan> + Send + 'static,
{
    let cb_err: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let cb_err2 = cb_err.clone();
    off_thread(
        py,
        move |intr| {
            let plan = make_plan(intr)?;
            run_all(plan, &cfg, intr, &mut |done, total| match &progress {
                None => Ok(()),
                Some(cb) => {
                    Python::attach(|py| cb.call1(py, (done, total)).map(|_| ())).map_err(|e| {
                        *cb_err2.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        Error::Interrupted
                    })
                }
            })
            .map(|(plan, results)| AioResults {
                plan,
                results,
                next: Mutex::new(0),
            })
        },
        move |py, r| {
            if let Some(e) = cb_err.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
            Ok(Bound::new(py, r)?.into_any())
        },
    )
}

/// `await _aio_scan(...)`: `_core._scan`'s run, results as [`AioResults`].
#[pyfunction]
#[pyo3(signature = (hosts, ports, *, timeout=None, concurrency=None, rate=None, progress=None, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn _aio_scan<'py>(
    py: Python<'py>,
    hosts: &Bound<'py, PyAny>,
    ports: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let job = scan_job(
        hosts,
        ports,
        timeout,
        concurrency,
        rate,
        family,
        source_address,
    )?;
    run_plan_async(py, job.plan, job.cfg, progress_arg(progress)?)
}

/// `await _aio_check(...)`: `_core._check`'s run, as [`AioResults`].
#[pyfunction]
#[pyo3(signature = (target, port=None, *, timeout=None, family=None, source_address=None))]
pub fn _aio_check<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let job = check_job(target, port, timeout, family, source_address)?;
    run_plan_async(py, job.plan, job.cfg, None)
}

/// `await _aio_check_many(...)`: `_core._check_many`'s run, as [`AioResults`].
#[pyfunction]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, rate=None, progress=None, family=None, source_address=None, each_address=false))]
#[allow(clippy::too_many_arguments)]
pub fn _aio_check_many<'py>(
    py: Python<'py>,
    targets: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
    each_address: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let job = targets_job(
        targets,
        timeout,
        concurrency,
        rate,
        family,
        source_address,
        each_address,
    )?;
    run_plan_async(py, job.plan, job.cfg, progress_arg(progress)?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AioResults>()?;
    m.add_function(wrap_pyfunction!(_aio_scan, m)?)?;
    m.add_function(wrap_pyfunction!(_aio_check, m)?)?;
    m.add_function(wrap_pyfunction!(_aio_check_many, m)?)?;
    m.add_function(wrap_pyfunction!(_aio_call, m)?)?;
    m.add_function(wrap_pyfunction!(_aio_wait_for, m)?)?;
    m.add_function(wrap_pyfunction!(_aio_banner, m)?)?;
    m.add_function(wrap_pyfunction!(_aio_udp_probe, m)?)?;
    Ok(())
}
