//! Bindings of the service checks: steps from `socketkit.Send`/`Expect`/
//! `StartTls`, the `service=`/`tls=`/`starttls=` arguments, and the pool of
//! checks (`service/runner.rs`) run without the GIL. Result tuples have
//! `CheckResult`'s twelve fields.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList, PyString, PyTuple};

use crate::addr::HostPort;
use crate::error::Error;
use crate::probe::{plan_targets, AddrControl, Cancel, Plan};
use crate::py::args::{self, type_name, value_error};
use crate::py::blocking::blocking;
use crate::py::probe::{rtt_ms, state_name, timings_dict};
use crate::py::probe_args::{addr_control, port_arg, progress_arg, target_arg, targets_arg};
use crate::py::tls::{client_tls_arg, info_to_py};
use crate::service::{
    service_steps, Pattern, ServiceResult, ServiceRun, ServiceSpec, StartTlsProto, Step, Steps,
};

/// Most threads one service-check call runs: each holds a connection
/// through its dialogue, so this bounds threads, not sockets in flight.
pub const MAX_SERVICE_THREADS: usize = 256;

/// Bytes from a `bytes`-like object or a `str` (UTF-8).
fn data_arg(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    Ok(args::ReadBuf::get(arg, obj)?.as_slice().to_vec())
}

/// One step object (`socketkit.Send`, `Expect`, `StartTls`).
fn step_arg(i: usize, obj: &Bound<'_, PyAny>) -> PyResult<Step> {
    let kind: String = obj
        .getattr("_kind")
        .and_then(|k| k.extract())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "steps[{i}] must be socketkit.Send, Expect or StartTls, got {}",
                type_name(obj)
            ))
        })?;
    match kind.as_str() {
        "send" => Ok(Step::Send(data_arg("Send.data", &obj.getattr("data")?)?)),
        "expect" => {
            let pattern = data_arg("Expect.pattern", &obj.getattr("pattern")?)?;
            let regex = obj.getattr("regex")?.is_truthy()?;
            let timeout = args::timeout("Expect.timeout", Some(&obj.getattr("timeout")?))?;
            let pattern = if regex {
                Pattern::regex("Expect.pattern", &pattern).map_err(value_error)?
            } else {
                Pattern::Exact(pattern)
            };
            Ok(Step::Expect { pattern, timeout })
        }
        "starttls" => Ok(Step::StartTls {
            starttls: starttls_arg(Some(&obj.getattr("starttls")?))?,
        }),
        other => Err(PyTypeError::new_err(format!(
            "steps[{i}]: unknown step kind {other:?}"
        ))),
    }
}

/// `run_steps(steps, *, tls=)` of both clients: the steps, and the TLS
/// client config only when a `StartTls` step needs one.
pub(crate) fn dialogue_args(
    py: Python<'_>,
    steps: &Bound<'_, PyAny>,
    tls: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Vec<Step>, Option<std::sync::Arc<crate::tls::ClientTls>>)> {
    let steps = steps_arg(steps)?;
    let needs_tls = steps.iter().any(|s| matches!(s, Step::StartTls { .. }));
    let client_tls = if needs_tls {
        Some(crate::py::tls::start_tls_arg(py, tls)?)
    } else {
        None
    };
    Ok((steps, client_tls))
}

pub(crate) fn steps_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Step>> {
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "steps must be a list of socketkit.Send, Expect and StartTls, got {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        out.push(step_arg(i, &item?)?);
    }
    Ok(out)
}

/// `starttls=`: None or a preset name.
pub(crate) fn starttls_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<StartTlsProto>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let s = o.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "starttls must be None or a str such as 'smtp', got {}",
            type_name(o)
        ))
    })?;
    StartTlsProto::parse("starttls", s.to_str()?)
        .map(Some)
        .map_err(value_error)
}

/// The arguments of a service check, as a spec (files read, regexes built).
#[allow(clippy::too_many_arguments)]
fn spec_arg(
    py: Python<'_>,
    timeout: Option<Duration>,
    ctl: &AddrControl,
    steps: Option<&Bound<'_, PyAny>>,
    service: Option<&Bound<'_, PyAny>>,
    tls: Option<&Bound<'_, PyAny>>,
    starttls: Option<&Bound<'_, PyAny>>,
) -> PyResult<ServiceSpec> {
    let steps = steps.filter(|s| !s.is_none());
    let service = service.filter(|s| !s.is_none());
    let steps = match (steps, service) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "steps and service: give one of them, not both",
            ))
        }
        (Some(s), None) => Steps::Given(steps_arg(s)?),
        (None, Some(name)) => {
            let name: String = name.extract().map_err(|_| {
                PyTypeError::new_err(format!("service must be a str, got {}", type_name(name)))
            })?;
            service_steps(&name, "check").map_err(value_error)?;
            Steps::Service(name.to_ascii_lowercase())
        }
        (None, None) => Steps::Given(Vec::new()),
    };
    let starttls = starttls_arg(starttls)?;
    let upgrade_step =
        matches!(&steps, Steps::Given(s) if s.iter().any(|s| matches!(s, Step::StartTls { .. })));
    let mut client = client_tls_arg(py, tls)?;
    let tls_first = client.is_some() && starttls.is_none() && !upgrade_step;
    if client.is_none() && (starttls.is_some() || upgrade_step) {
        // An upgrade without tls= uses the defaults, as tls=True does.
        client = client_tls_arg(py, Some(PyBool::new(py, true).as_any()))?;
    }
    Ok(ServiceSpec {
        steps,
        tls: client,
        tls_first,
        starttls,
        source: ctl.source,
        timeout,
        banner: None,
    })
}

/// Regex groups as Python sees them: `tuple[bytes | None, ...]`.
pub(crate) fn captures_to_py<'py>(
    py: Python<'py>,
    c: &crate::service::steps::Captures,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        c.iter().map(|g| g.as_deref().map(|b| PyBytes::new(py, b))),
    )
}

/// A result as the tuple `CheckResult` is made from.
fn result_tuple<'py>(
    py: Python<'py>,
    plan: &Plan,
    r: &ServiceResult,
) -> PyResult<Bound<'py, PyTuple>> {
    let (h, port) = plan.targets[r.target];
    let captures = match &r.captures {
        Some(c) => Some(captures_to_py(py, c)?),
        None => None,
    };
    let tls = match &r.tls {
        Some(info) => Some(info_to_py(py, info)?),
        None => None,
    };
    (
        plan.hosts[h as usize].label.as_str(),
        r.address.map(|a| a.ip().to_string()),
        port,
        pyo3::intern!(py, "tcp"),
        state_name(py, r.outcome.state),
        rtt_ms(&r.outcome),
        r.outcome.error.as_deref(),
        timings_dict(py, &r.timings)?,
        captures,
        r.failed.as_ref().map(|f| f.step),
        r.failed.as_ref().map(|f| PyBytes::new(py, &f.received)),
        tls,
    )
        .into_pyobject(py)
}

pub(crate) struct Prepared {
    pub(crate) targets: Vec<HostPort>,
    pub(crate) spec: ServiceSpec,
    pub(crate) ctl: AddrControl,
    pub(crate) concurrency: usize,
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    py: Python<'_>,
    targets: Vec<HostPort>,
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
    each_address: bool,
    steps: Option<&Bound<'_, PyAny>>,
    service: Option<&Bound<'_, PyAny>>,
    tls: Option<&Bound<'_, PyAny>>,
    starttls: Option<&Bound<'_, PyAny>>,
) -> PyResult<Prepared> {
    let cfg = crate::py::probe_args::config(timeout, concurrency, MAX_SERVICE_THREADS, None)?;
    let ctl = addr_control(family, source_address, each_address)?;
    let spec = spec_arg(py, cfg.timeout, &ctl, steps, service, tls, starttls)?;
    Ok(Prepared {
        targets,
        spec,
        ctl,
        concurrency: cfg.concurrency.min(MAX_SERVICE_THREADS),
    })
}

pub(crate) fn start(
    p: Prepared,
    intr: &dyn crate::wait::Interrupt,
) -> crate::error::Result<ServiceRun> {
    let plan = plan_targets(&p.targets, p.spec.timeout, &p.ctl, intr)?;
    ServiceRun::start(plan, p.spec, p.concurrency)
}

/// Run `p` to the end without the GIL; `progress(done, total)` with it.
pub(crate) fn run_prepared(
    py: Python<'_>,
    p: Prepared,
    progress: Option<Py<PyAny>>,
) -> PyResult<(ServiceRun, Vec<ServiceResult>)> {
    let cb_err: Mutex<Option<PyErr>> = Mutex::new(None);
    let r = blocking(py, |intr| {
        let mut run = start(p, intr)?;
        let results = run.collect(intr, &mut |done, total| match &progress {
            None => Ok(()),
            Some(cb) => Python::attach(|py| cb.call1(py, (done, total)).map(|_| ())).map_err(|e| {
                *cb_err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Error::Interrupted
            }),
        })?;
        Ok((run, results))
    });
    r.map_err(|e| {
        cb_err
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(e)
    })
}

/// Service checks of `targets`: result tuples in input order.
#[pyfunction]
#[pyo3(name = "_service_check_many")]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, progress=None, family=None, source_address=None, each_address=false, steps=None, service=None, tls=None, starttls=None))]
#[allow(clippy::too_many_arguments)]
pub fn service_check_many<'py>(
    py: Python<'py>,
    targets: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
    each_address: bool,
    steps: Option<&Bound<'py, PyAny>>,
    service: Option<&Bound<'py, PyAny>>,
    tls: Option<&Bound<'py, PyAny>>,
    starttls: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let targets = targets_arg(targets)?;
    let progress = progress_arg(progress)?;
    let p = prepare(
        py,
        targets,
        timeout,
        concurrency,
        family,
        source_address,
        each_address,
        steps,
        service,
        tls,
        starttls,
    )?;
    let (run, results) = run_prepared(py, p, progress)?;
    let items = results
        .iter()
        .map(|r| result_tuple(py, run.plan(), r))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// One target's service check: its result and, with `banner`, what the
/// peer said after the steps.
#[allow(clippy::too_many_arguments)]
fn check_one<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
    steps: Option<&Bound<'py, PyAny>>,
    service: Option<&Bound<'py, PyAny>>,
    tls: Option<&Bound<'py, PyAny>>,
    starttls: Option<&Bound<'py, PyAny>>,
    banner: Option<usize>,
) -> PyResult<(Bound<'py, PyTuple>, Option<Vec<u8>>)> {
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let mut p = prepare(
        py,
        vec![target],
        timeout,
        None,
        family,
        source_address,
        false,
        steps,
        service,
        tls,
        starttls,
    )?;
    p.spec.banner = banner;
    let (run, mut results) = run_prepared(py, p, None)?;
    let mut r = results
        .pop()
        .ok_or_else(|| PyRuntimeError::new_err("check: no result"))?;
    let said = r.banner.take();
    Ok((result_tuple(py, run.plan(), &r)?, said))
}

/// A service check of one target: one result tuple.
#[pyfunction]
#[pyo3(name = "_service_check")]
#[pyo3(signature = (target, port=None, *, timeout=None, family=None, source_address=None, steps=None, service=None, tls=None, starttls=None))]
#[allow(clippy::too_many_arguments)]
pub fn service_check<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
    steps: Option<&Bound<'py, PyAny>>,
    service: Option<&Bound<'py, PyAny>>,
    tls: Option<&Bound<'py, PyAny>>,
    starttls: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let (t, _) = check_one(
        py,
        target,
        port,
        timeout,
        family,
        source_address,
        steps,
        service,
        tls,
        starttls,
        None,
    )?;
    Ok(t)
}

/// `banner(steps=...)`: the check's result tuple, and what the peer said
/// after the steps (None when the check failed).
#[pyfunction]
#[pyo3(name = "_service_banner")]
#[pyo3(signature = (target, port=None, *, max_bytes, timeout=None, family=None, source_address=None, steps=None, tls=None, starttls=None))]
#[allow(clippy::too_many_arguments)]
pub fn service_banner<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    max_bytes: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
    steps: Option<&Bound<'py, PyAny>>,
    tls: Option<&Bound<'py, PyAny>>,
    starttls: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyBytes>>)> {
    let max = args::size("max_bytes", max_bytes)?;
    if max == 0 {
        return Err(PyValueError::new_err("max_bytes must be at least 1, got 0"));
    }
    let (t, said) = check_one(
        py,
        target,
        port,
        timeout,
        family,
        source_address,
        steps,
        None,
        tls,
        starttls,
        Some(max),
    )?;
    Ok((t, said.map(|b| PyBytes::new(py, &b))))
}

pub(crate) struct IterState {
    pub(crate) run: ServiceRun,
    pub(crate) ready: VecDeque<ServiceResult>,
}

/// Service-check results as they finish; `close()` (or dropping it)
/// cancels the checks still running.
#[pyclass(module = "socketkit._probe_core", frozen)]
pub struct ServiceIter {
    pub(crate) state: Mutex<IterState>,
    pub(crate) cancel: Arc<Cancel>,
    pub(crate) total: usize,
    /// Yield `TlsResult` tuples (tls_check_iter) instead of `CheckResult`'s.
    pub(crate) tls_results: bool,
}

#[pymethods]
impl ServiceIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut guard = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "this check iterator is already in use by another thread",
                ))
            }
        };
        let st: &mut IterState = &mut guard;
        if st.ready.is_empty() && !st.run.finished() {
            let batch = blocking(py, |intr| st.run.wait(intr))?;
            st.ready.extend(batch);
        }
        match st.ready.pop_front() {
            None => Ok(None),
            Some(r) if self.tls_results => {
                crate::py::tls_check::tls_tuple(py, st.run.plan(), &r).map(Some)
            }
            Some(r) => result_tuple(py, st.run.plan(), &r).map(Some),
        }
    }

    #[getter]
    fn total(&self) -> usize {
        self.total
    }

    fn close(&self) {
        self.cancel.set();
        if let Ok(mut st) = self.state.try_lock() {
            st.run.close();
            st.ready.clear();
        }
    }
}

/// Streaming service checks.
#[pyfunction]
#[pyo3(name = "_service_check_iter")]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, family=None, source_address=None, each_address=false, steps=None, service=None, tls=None, starttls=None))]
#[allow(clippy::too_many_arguments)]
pub fn service_check_iter(
    py: Python<'_>,
    targets: &Bound<'_, PyAny>,
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
    each_address: bool,
    steps: Option<&Bound<'_, PyAny>>,
    service: Option<&Bound<'_, PyAny>>,
    tls: Option<&Bound<'_, PyAny>>,
    starttls: Option<&Bound<'_, PyAny>>,
) -> PyResult<ServiceIter> {
    let targets = targets_arg(targets)?;
    let p = prepare(
        py,
        targets,
        timeout,
        concurrency,
        family,
        source_address,
        each_address,
        steps,
        service,
        tls,
        starttls,
    )?;
    let run = blocking(py, |intr| start(p, intr))?;
    Ok(ServiceIter {
        cancel: run.canceller(),
        total: run.total,
        tls_results: false,
        state: Mutex::new(IterState {
            run,
            ready: VecDeque::new(),
        }),
    })
}

/// The steps of a named service for `host`, as `(kind, ...)` tuples the
/// Python layer turns into step objects (`socketkit.SERVICES`).
#[pyfunction]
#[pyo3(name = "_service_steps")]
pub fn service_steps_py<'py>(
    py: Python<'py>,
    name: &str,
    host: &str,
) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let steps = service_steps(name, host).map_err(value_error)?;
    steps
        .iter()
        .map(|s| match s {
            Step::Send(d) => ("send", PyBytes::new(py, d)).into_pyobject(py),
            Step::Expect { pattern, timeout } => {
                let (p, regex) = match pattern {
                    Pattern::Exact(b) => (b.clone(), false),
                    Pattern::Regex(r) => (r.as_str().as_bytes().to_vec(), true),
                };
                (
                    "expect",
                    PyBytes::new(py, &p),
                    regex,
                    timeout.map(|t| t.as_secs_f64()),
                )
                    .into_pyobject(py)
            }
            Step::StartTls { starttls } => {
                ("starttls", starttls.map(|p| p.as_str())).into_pyobject(py)
            }
        })
        .collect()
}

/// The service names with ready steps.
#[pyfunction]
#[pyo3(name = "_service_names")]
pub fn service_names() -> Vec<&'static str> {
    crate::service::SERVICE_NAMES.to_vec()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ServiceIter>()?;
    m.add_function(wrap_pyfunction!(service_check, m)?)?;
    m.add_function(wrap_pyfunction!(service_banner, m)?)?;
    m.add_function(wrap_pyfunction!(service_check_many, m)?)?;
    m.add_function(wrap_pyfunction!(service_check_iter, m)?)?;
    m.add_function(wrap_pyfunction!(service_steps_py, m)?)?;
    m.add_function(wrap_pyfunction!(service_names, m)?)?;
    Ok(())
}
