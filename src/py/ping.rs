//! Bindings of tcping: the blocking `_tcping` (a count of pings, then the
//! numbers) and the streaming `_tcping_iter` (one ping per `__next__`, for
//! the CLI and monitoring loops). Both drive the core's `Pinger`.

use std::sync::{Mutex, TryLockError};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::addr::HostPort;
use crate::defaults;
use crate::error::Result;
use crate::probe::ping::{self, PingProbe, Pinger};
use crate::probe::types::State;
use crate::probe::Cancel;
use crate::py::args::{self, Int};
use crate::py::blocking::{blocking, core};
use crate::py::probe::{rtt_ms, state_name};
use crate::py::probe_args::{addr_control, port_arg, saturated, target_arg};
use crate::wait::Interrupt;

fn count_arg(count: Int) -> PyResult<usize> {
    if count.0 < 1 {
        return Err(PyValueError::new_err(format!(
            "count must be at least 1, got {}",
            saturated(count)
        )));
    }
    count.size("count")
}

/// `tcping` in the core: (host, address, port, rtts_ms_or_None, errors).
#[pyfunction]
#[pyo3(name = "_tcping")]
#[pyo3(signature = (target, port, *, count, interval, timeout, family=None, source_address=None))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub fn tcping(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
    count: &Bound<'_, PyAny>,
    interval: &Bound<'_, PyAny>,
    timeout: Option<&Bound<'_, PyAny>>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
) -> PyResult<(String, String, u16, Vec<Option<f64>>, Vec<Option<String>>)> {
    let ctl = addr_control(family, source_address, false)?;
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let count = count_arg(args::int("count", count)?)?;
    let interval = args::seconds("interval", interval)?;
    let timeout = args::timeout("timeout", timeout)?;
    let run = blocking(py, |intr| {
        ping::tcping(&target, count, interval, timeout, &ctl, intr)
    })?;
    let rtts = run
        .replies
        .iter()
        .map(|r| r.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0))
        .collect();
    let errors = run.replies.iter().map(|r| r.clone().err()).collect();
    Ok((
        target.host.clone(),
        run.address.ip().to_string(),
        run.address.port(),
        rtts,
        errors,
    ))
}

/// Ctrl-C, or `close()` from another thread.
struct Either<'a>(&'a Cancel, &'a dyn Interrupt);

impl Interrupt for Either<'_> {
    fn check(&self) -> Result<()> {
        self.0.check()?;
        self.1.check()
    }
}

/// The state both ping iterators share: a `Pinger` behind a lock, and a
/// cancel flag outside it, so `close()` reaches a `__next__` that waits.
struct Pings {
    /// `None` once the pings are done, closed, or failed.
    pinger: Mutex<Option<Pinger>>,
    closed: Cancel,
    host: Py<PyString>,
    port: u16,
}

impl Pings {
    fn new(py: Python<'_>, target: &HostPort, pinger: Pinger) -> Self {
        Pings {
            host: PyString::new(py, &target.host).unbind(),
            port: target.port,
            pinger: Mutex::new(Some(pinger)),
            closed: Cancel::new(),
        }
    }

    /// The next ping; `None` once done or closed. `strict`: a first ping
    /// whose name does not resolve raises (tcping()'s way).
    fn next(&self, py: Python<'_>, strict: bool) -> PyResult<Option<PingProbe>> {
        let mut guard = match self.pinger.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "this ping iterator is already in use by another thread",
                ))
            }
        };
        let Some(pinger) = guard.as_mut().filter(|_| !self.closed.is_set()) else {
            *guard = None;
            return Ok(None);
        };
        let closed = &self.closed;
        match blocking(py, |intr| pinger.next(&Either(closed, intr))) {
            Ok(Some(p)) => match p.unresolved {
                Some(e) if strict && p.seq == 1 => {
                    *guard = None;
                    core(py, Err(e))
                }
                _ => Ok(Some(p)),
            },
            Ok(None) => {
                *guard = None;
                Ok(None)
            }
            Err(_) if closed.is_set() => {
                *guard = None;
                Ok(None)
            }
            Err(e) => {
                *guard = None;
                Err(e)
            }
        }
    }

    /// Stop: a ping under way ends within a wait slice, then the iterator ends.
    fn close(&self) {
        self.closed.set();
        if let Ok(mut g) = self.pinger.try_lock() {
            *g = None;
        }
    }
}

/// tcping one ping at a time: ``(seq, host, address, port, state,
/// rtt_ms, error)`` per ping, each started ``interval`` seconds after the
/// one before it started. ``close()`` (from any thread) ends it.
#[pyclass(module = "socketkit._probe_core", frozen)]
pub struct PingIter(Pings);

#[pymethods]
impl PingIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(probe) = self.0.next(py, false)? else {
            return Ok(None);
        };
        let address = probe.address.map(|a| a.ip().to_string());
        let o = &probe.outcome;
        let t = (
            probe.seq,
            self.0.host.bind(py),
            address,
            self.0.port,
            state_name(py, o.state),
            rtt_ms(o),
            o.error.as_deref(),
        );
        t.into_pyobject(py).map(Some)
    }

    /// Stop: a ping under way ends within a wait slice, then the iterator ends.
    fn close(&self) {
        self.0.close();
    }
}

/// tcping's stream with timestamps: ``(seq, time, host, address, port,
/// state, rtt_ms, error)`` per ping, ``time`` the Unix time it started,
/// ``error`` why it failed. ``close()`` (from any thread) ends it.
#[pyclass(module = "socketkit._probe_core", frozen)]
pub struct PingStream {
    pings: Pings,
    strict: bool,
}

#[pymethods]
impl PingStream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(probe) = self.pings.next(py, self.strict)? else {
            return Ok(None);
        };
        let o = &probe.outcome;
        let time = probe
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let t = (
            probe.seq,
            time,
            self.pings.host.bind(py),
            probe.address.map(|a| a.ip().to_string()),
            self.pings.port,
            state_name(py, o.state),
            rtt_ms(o),
            (o.state != State::Open).then(|| o.reason()),
        );
        t.into_pyobject(py).map(Some)
    }

    /// Stop: a ping under way ends within a wait slice, then the iterator ends.
    fn close(&self) {
        self.pings.close();
    }
}

/// `_tcping_iter` in the core: checks the arguments; the name is resolved
/// at the first ping (and again while it does not resolve: such pings are
/// results with state ``"error"``, as ``check`` reports them).
#[pyfunction]
#[pyo3(name = "_tcping_iter")]
#[pyo3(
    signature = (
        target,
        port=None,
        *,
        count=Int::from(defaults::PING_COUNT),
        interval=defaults::PING_INTERVAL,
        timeout=Some(defaults::PING_TIMEOUT),
        family=None,
        source_address=None
    ),
    text_signature = "(target, port=None, *, count=4, interval=1.0, timeout=1.0, family=None, source_address=None)"
)]
#[allow(clippy::too_many_arguments)]
pub fn tcping_iter(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
    count: Int,
    interval: f64,
    timeout: Option<f64>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
) -> PyResult<PingIter> {
    let ctl = addr_control(family, source_address, false)?;
    let port = port_arg(port)?;
    let target: HostPort = target_arg("target", target, port)?;
    let count = count_arg(count)?;
    let interval = args::secs_f64("interval", interval)?;
    let timeout = timeout.map(|t| args::secs_f64("timeout", t)).transpose()?;
    let pinger = Pinger::new(target.clone(), Some(count), interval, timeout).with_addr_control(ctl);
    Ok(PingIter(Pings::new(py, &target, pinger)))
}

/// tcping's stream for ``tcping()``, ``tcping_iter()`` and the CLI:
/// ``(seq, time, host, address, port, state, rtt_ms, error)`` per ping,
/// ``time`` the Unix time it started, ``error`` why a ping failed.
/// ``count=None`` pings until closed (or ``deadline`` seconds pass); with
/// ``strict``, a name that does not resolve at the first ping raises.
#[pyfunction]
#[pyo3(name = "_tcping_stream")]
#[pyo3(signature = (target, port=None, *, count, interval, timeout, deadline=None, resolve_every=None, family=None, source_address=None, strict=true))]
#[allow(clippy::too_many_arguments)]
pub fn tcping_stream(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
    count: Option<Int>,
    interval: f64,
    timeout: Option<f64>,
    deadline: Option<f64>,
    resolve_every: Option<Int>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
    strict: bool,
) -> PyResult<PingStream> {
    let ctl = addr_control(family, source_address, false)?;
    let port = port_arg(port)?;
    let target: HostPort = target_arg("target", target, port)?;
    let count = count.map(count_arg).transpose()?;
    let interval = args::secs_f64("interval", interval)?;
    let timeout = timeout.map(|t| args::secs_f64("timeout", t)).transpose()?;
    let deadline = deadline
        .map(|t| args::secs_f64("deadline", t))
        .transpose()?;
    let resolve_every = match resolve_every {
        Some(n) if n.0 < 1 => {
            return Err(PyValueError::new_err(format!(
                "resolve_every must be at least 1, got {}",
                saturated(n)
            )))
        }
        Some(n) => Some(n.size("resolve_every")?),
        None => None,
    };
    let pinger = Pinger::new(target.clone(), count, interval, timeout)
        .with_deadline(deadline)
        .with_resolve_every(resolve_every)
        .with_addr_control(ctl);
    Ok(PingStream {
        pings: Pings::new(py, &target, pinger),
        strict,
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PingIter>()?;
    m.add_class::<PingStream>()?;
    m.add_function(wrap_pyfunction!(tcping, m)?)?;
    m.add_function(wrap_pyfunction!(tcping_iter, m)?)?;
    m.add_function(wrap_pyfunction!(tcping_stream, m)?)?;
    Ok(())
}
