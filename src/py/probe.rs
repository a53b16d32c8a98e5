//! Bindings of the probes: convert targets, hosts and ports, call the core
//! without the GIL, and hand back plain tuples that the pure-Python result
//! classes (`socketkit/results.py`) wrap. Result tuples are
//! `(host, address, port, proto, state, rtt_ms, error, timings, captures,
//! failed_step, received, tls)`: `CheckResult`'s fields in order.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::probe::run::Canceller;
use crate::probe::{
    banner as banner_core, run_all, udp, Config, Outcome, Plan, ResultStream, State, TargetResult,
    Timings,
};
use crate::py::args;
use crate::py::blocking::blocking;
use crate::py::probe_args::{
    addr_control, bytes_arg, check_job, port_arg, ports_arg, progress_arg, scan_job, target_arg,
    targets_job, Job,
};

/// Builds result tuples, caching the host and address strings.
pub(crate) struct Tuples<'py> {
    py: Python<'py>,
    /// By host index; a map, not a table: the iterators make a `Tuples`
    /// per result, and a /16 has 65,536 hosts.
    labels: HashMap<u32, Bound<'py, PyString>>,
    addrs: HashMap<IpAddr, Bound<'py, PyString>>,
}

impl<'py> Tuples<'py> {
    pub(crate) fn new(py: Python<'py>, _plan: &Plan) -> Self {
        Tuples {
            py,
            labels: HashMap::new(),
            addrs: HashMap::new(),
        }
    }

    pub(crate) fn make(
        &mut self,
        plan: &Plan,
        r: &TargetResult,
        proto: &str,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let py = self.py;
        let (h, port) = plan.targets[r.target];
        let label = self
            .labels
            .entry(h)
            .or_insert_with(|| PyString::new(py, &plan.hosts[h as usize].label))
            .clone();
        let address = r.address.map(|a| {
            self.addrs
                .entry(a.ip())
                .or_insert_with(|| PyString::new(py, &a.ip().to_string()))
                .clone()
        });
        let timings = Timings::connect_only(plan.resolve_time(r.target), r.outcome.rtt);
        outcome_tuple(py, label, address, port, proto, &r.outcome, &timings)
    }
}

/// `timings` as Python sees it: a dict of milliseconds, `None` for a phase
/// that did not run.
pub(crate) fn timings_dict<'py>(py: Python<'py>, t: &Timings) -> PyResult<Bound<'py, PyDict>> {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let d = PyDict::new(py);
    d.set_item(pyo3::intern!(py, "resolve_ms"), ms(t.resolve))?;
    d.set_item(pyo3::intern!(py, "connect_ms"), ms(t.connect))?;
    d.set_item(pyo3::intern!(py, "tls_ms"), ms(t.tls))?;
    d.set_item(pyo3::intern!(py, "dialogue_ms"), ms(t.dialogue))?;
    d.set_item(pyo3::intern!(py, "total_ms"), ms(t.total))?;
    Ok(d)
}

pub(crate) fn outcome_tuple<'py>(
    py: Python<'py>,
    host: Bound<'py, PyString>,
    address: Option<Bound<'py, PyString>>,
    port: u16,
    proto: &str,
    o: &Outcome,
    timings: &Timings,
) -> PyResult<Bound<'py, PyTuple>> {
    let proto = if proto == "udp" {
        pyo3::intern!(py, "udp")
    } else {
        pyo3::intern!(py, "tcp")
    };
    let state = state_name(py, o.state);
    let none = py.None();
    (
        host,
        address,
        port,
        proto,
        state,
        rtt_ms(o),
        o.error.as_deref(),
        timings_dict(py, timings)?,
        none.clone_ref(py),
        none.clone_ref(py),
        none.clone_ref(py),
        none,
    )
        .into_pyobject(py)
}

/// A state as Python sees it (interned: a scan makes one per port).
pub(crate) fn state_name(py: Python<'_>, state: State) -> &Bound<'_, PyString> {
    match state {
        State::Open => pyo3::intern!(py, "open"),
        State::Closed => pyo3::intern!(py, "closed"),
        State::Filtered => pyo3::intern!(py, "filtered"),
        State::Error => pyo3::intern!(py, "error"),
        State::OpenFiltered => pyo3::intern!(py, "open|filtered"),
    }
}

pub(crate) fn rtt_ms(o: &Outcome) -> Option<f64> {
    o.rtt.map(|d| d.as_secs_f64() * 1000.0)
}

/// Run a plan to the end without the GIL; `progress(done, total)` is
/// called with the GIL, and what it raises ends the run and propagates.
fn run_plan<'py>(
    py: Python<'py>,
    make_plan: impl FnOnce(&dyn crate::wait::Interrupt) -> crate::error::Result<Plan> + Send,
    cfg: &Config,
    progress: Option<Py<PyAny>>,
) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let cb_err: Mutex<Option<PyErr>> = Mutex::new(None);
    let r = blocking(py, |intr| {
        let plan = make_plan(intr)?;
        run_all(plan, cfg, intr, &mut |done, total| match &progress {
            None => Ok(()),
            Some(cb) => Python::attach(|py| cb.call1(py, (done, total)).map(|_| ())).map_err(|e| {
                *cb_err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                crate::error::Error::Interrupted
            }),
        })
    });
    let (plan, results) = r.map_err(|e| {
        cb_err
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(e)
    })?;
    let mut t = Tuples::new(py, &plan);
    let mut out = Vec::with_capacity(results.len());
    for (i, r) in results.iter().enumerate() {
        // A million results take a while to wrap, with the GIL held: let
        // Ctrl-C in (issue 15 item 9).
        if i % 4096 == 4095 {
            py.check_signals()?;
        }
        out.push(t.make(&plan, r, "tcp")?);
    }
    Ok(out)
}

/// `check_many` in the core: a list of result tuples, input order.
#[pyfunction]
#[pyo3(name = "_check_many")]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, rate=None, progress=None, family=None, source_address=None, each_address=false))]
#[allow(clippy::too_many_arguments)]
pub fn check_many<'py>(
    py: Python<'py>,
    targets: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
    each_address: bool,
) -> PyResult<Bound<'py, PyList>> {
    let job = targets_job(
        targets,
        timeout,
        concurrency,
        rate,
        family,
        source_address,
        each_address,
    )?;
    let items = run_plan(py, job.plan, &job.cfg, progress_arg(progress)?)?;
    PyList::new(py, items)
}

/// `check` of one TCP target in the core: one result tuple.
#[pyfunction]
#[pyo3(name = "_check")]
#[pyo3(signature = (target, port=None, *, timeout=None, family=None, source_address=None))]
pub fn check<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let job = check_job(target, port, timeout, family, source_address)?;
    let items = run_plan(py, job.plan, &job.cfg, None)?;
    items
        .into_iter()
        .next()
        .ok_or_else(|| PyRuntimeError::new_err("check: the probe returned no result"))
}

/// `scan` in the core: the result tuples, host by host.
#[pyfunction]
#[pyo3(name = "_scan")]
#[pyo3(signature = (hosts, ports, *, timeout=None, concurrency=None, rate=None, progress=None, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn scan<'py>(
    py: Python<'py>,
    hosts: &Bound<'py, PyAny>,
    ports: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let job = scan_job(
        hosts,
        ports,
        timeout,
        concurrency,
        rate,
        family,
        source_address,
    )?;
    let items = run_plan(py, job.plan, &job.cfg, progress_arg(progress)?)?;
    PyList::new(py, items)
}

struct IterState {
    stream: ResultStream,
    ready: VecDeque<TargetResult>,
}

/// Results of ``check_iter``/``scan_iter`` as they complete: an iterator
/// of result tuples fed by the probe threads. ``close()`` (or dropping it)
/// cancels the probes still running.
#[pyclass(module = "socketkit._probe_core", frozen)]
pub struct ProbeIter {
    state: Mutex<IterState>,
    /// Outside the lock: `close()` from another thread must not wait for a
    /// `__next__` that is blocked (it holds the lock without the GIL).
    canceller: Canceller,
    total: usize,
}

impl ProbeIter {
    fn start(
        plan: Plan,
        cfg: &Config,
        intr: &dyn crate::wait::Interrupt,
    ) -> crate::error::Result<Self> {
        let stream = ResultStream::start(plan, cfg, intr)?;
        Ok(ProbeIter {
            canceller: stream.canceller(),
            total: stream.total(),
            state: Mutex::new(IterState {
                stream,
                ready: VecDeque::new(),
            }),
        })
    }

    /// Plan (names resolved without the GIL) and start the run.
    fn planned(py: Python<'_>, job: Job) -> PyResult<Self> {
        let Job { cfg, plan } = job;
        blocking(py, move |intr| ProbeIter::start(plan(intr)?, &cfg, intr))
    }
}

#[pymethods]
impl ProbeIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut guard = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "this probe iterator is already in use by another thread",
                ))
            }
        };
        let st: &mut IterState = &mut guard;
        if st.ready.is_empty() && !st.stream.finished() {
            let batch = blocking(py, |intr| st.stream.wait(intr))?;
            st.ready.extend(batch);
        }
        match st.ready.pop_front() {
            None => Ok(None),
            Some(r) => {
                let plan = st.stream.plan();
                Tuples::new(py, plan).make(plan, &r, "tcp").map(Some)
            }
        }
    }

    /// How many results the iterator yields in all.
    #[getter]
    fn total(&self) -> usize {
        self.total
    }

    /// Stop the probes still running; the iterator then ends.
    fn close(&self) {
        self.canceller.cancel();
        if let Ok(mut st) = self.state.try_lock() {
            st.stream.close();
            st.ready.clear();
        }
    }
}

/// `check_iter` in the core.
#[pyfunction]
#[pyo3(name = "_check_iter")]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, rate=None, family=None, source_address=None, each_address=false))]
#[allow(clippy::too_many_arguments)]
pub fn check_iter<'py>(
    py: Python<'py>,
    targets: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
    each_address: bool,
) -> PyResult<ProbeIter> {
    let job = targets_job(
        targets,
        timeout,
        concurrency,
        rate,
        family,
        source_address,
        each_address,
    )?;
    ProbeIter::planned(py, job)
}

/// `scan_iter` in the core.
#[pyfunction]
#[pyo3(name = "_scan_iter")]
#[pyo3(signature = (hosts, ports, *, timeout=None, concurrency=None, rate=None, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn scan_iter<'py>(
    py: Python<'py>,
    hosts: &Bound<'py, PyAny>,
    ports: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<ProbeIter> {
    let job = scan_job(
        hosts,
        ports,
        timeout,
        concurrency,
        rate,
        family,
        source_address,
    )?;
    ProbeIter::planned(py, job)
}

/// `banner` in the core.
#[pyfunction]
#[pyo3(name = "_banner")]
#[pyo3(signature = (target, port, *, send, timeout, max_bytes, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn banner<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    send: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    max_bytes: &Bound<'py, PyAny>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let ctl = addr_control(family, source_address, false)?;
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let send = bytes_arg("send", send)?;
    let timeout = args::timeout("timeout", timeout)?;
    let max_bytes = args::size("max_bytes", max_bytes)?;
    if max_bytes == 0 {
        return Err(PyValueError::new_err("max_bytes must be at least 1, got 0"));
    }
    let data = blocking(py, |intr| {
        banner_core::banner(&target, send.as_deref(), timeout, max_bytes, &ctl, intr)
    })?;
    Ok(pyo3::types::PyBytes::new(py, &data))
}

/// `udp_probe` in the core: one result tuple.
#[pyfunction]
#[pyo3(name = "_udp_probe")]
#[pyo3(signature = (target, port, payload, *, timeout, retries, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn udp_probe<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    payload: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    retries: &Bound<'py, PyAny>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let ctl = addr_control(family, source_address, false)?;
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let payload = bytes_arg("payload", payload)?.unwrap_or_default();
    let timeout = args::timeout("timeout", timeout)?;
    let retries = args::size("retries", retries)?;
    let (addr, o): (SocketAddr, Outcome) = blocking(py, |intr| {
        udp::udp_probe(&target, &payload, timeout, retries, &ctl, intr)
    })?;
    let host = PyString::new(py, &target.host);
    let address = PyString::new(py, &addr.ip().to_string());
    let timings = Timings {
        total: o.rtt,
        ..Timings::default()
    };
    outcome_tuple(py, host, Some(address), addr.port(), "udp", &o, &timings)
}

/// Parse a port spec the way scan does (for tests and the CLI).
#[pyfunction]
#[pyo3(name = "_parse_ports")]
pub fn parse_ports(ports: &Bound<'_, PyAny>) -> PyResult<Vec<u16>> {
    ports_arg(ports)
}

/// Check a target the way every probe does, without resolving or
/// connecting: `(host, port)` or the probes' ValueError/TypeError (so the
/// CLI refuses a bad target before it prints anything).
#[pyfunction]
#[pyo3(name = "_parse_target")]
pub fn parse_target(target: &Bound<'_, PyAny>) -> PyResult<(String, u16)> {
    let hp = target_arg("target", target, None)?;
    Ok((hp.host, hp.port))
}

/// Raise the soft RLIMIT_NOFILE to the hard limit; the descriptors a scan
/// may use.
#[pyfunction]
#[pyo3(name = "_fd_budget")]
pub fn fd_budget() -> usize {
    crate::probe::limits::fd_budget()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProbeIter>()?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(check_many, m)?)?;
    m.add_function(wrap_pyfunction!(check_iter, m)?)?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(scan_iter, m)?)?;
    m.add_function(wrap_pyfunction!(banner, m)?)?;
    m.add_function(wrap_pyfunction!(udp_probe, m)?)?;
    m.add_function(wrap_pyfunction!(parse_ports, m)?)?;
    m.add_function(wrap_pyfunction!(parse_target, m)?)?;
    m.add_function(wrap_pyfunction!(fd_budget, m)?)?;
    Ok(())
}
