//! Bindings of the probes: convert targets, hosts and ports, call the core
//! without the GIL, and hand back plain tuples that the pure-Python result
//! classes (`socketkit/results.py`) wrap. Result tuples are
//! `(host, address, port, proto, state, rtt_ms, error)`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyRange, PyString, PyTuple};

use crate::addr::HostPort;
use crate::error::Error;
use crate::probe::engine::{run_all, Canceller, Combiner, Run};
use crate::probe::target::{
    check_concurrency, check_probe_port, check_rate, parse_host_spec, parse_target, probe_port,
    split_hosts, PortSet,
};
use crate::probe::waitfor::Readiness;
use crate::probe::{
    banner as banner_core, ping, plan_scan, plan_targets, udp, waitfor, Config, HostSpec, Outcome,
    Plan, State, TargetResult, MAX_SCAN_TARGETS,
};
use crate::py::args::{self, type_name, value_error};
use crate::py::blocking::blocking;
use crate::wait::SLICE;

/// A Python int (not a bool) as i64, TypeError naming `arg` otherwise.
fn int_arg(arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{arg} must be an int, got {}",
            type_name(obj)
        )));
    }
    obj.extract::<i64>()
        .map_err(|_| PyValueError::new_err(format!("{arg}: {obj} is out of range")))
}

/// `port=` of the single-target probes.
fn port_arg(port: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u16>> {
    match port {
        None => Ok(None),
        Some(p) if p.is_none() => Ok(None),
        Some(p) => Ok(Some(
            probe_port("port", int_arg("port", p)?).map_err(value_error)?,
        )),
    }
}

/// One target: `"host:port"`, `"[v6]:port"`, `(host, port)`, or a bare host
/// with `port` given separately.
fn target_arg(arg: &'static str, obj: &Bound<'_, PyAny>, port: Option<u16>) -> PyResult<HostPort> {
    if let Ok(s) = obj.cast::<PyString>() {
        return parse_target(arg, s.to_str()?, port).map_err(value_error);
    }
    if obj.is_instance_of::<PyTuple>() || obj.is_instance_of::<PyList>() {
        if port.is_some() {
            return Err(PyValueError::new_err(format!(
                "{arg}: {} already names a port; pass the port once",
                obj.repr()?
            )));
        }
        let hp = args::address(arg, obj)?;
        check_probe_port(arg, hp.port).map_err(value_error)?;
        return Ok(hp);
    }
    Err(PyTypeError::new_err(format!(
        "{arg} must be 'host:port', '[v6]:port' or (host, port), got {}",
        type_name(obj)
    )))
}

/// `targets` of check_many: an iterable of targets; errors say which item.
fn targets_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<HostPort>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "targets must be an iterable of 'host:port' or (host, port), got a str: wrap it in a list",
        ));
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "targets must be an iterable of 'host:port' or (host, port), got {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        match target_arg("targets", &item, None) {
            Ok(t) => out.push(t),
            Err(e) => {
                let msg = e.value(obj.py()).to_string();
                let msg = msg.strip_prefix("targets").unwrap_or(&msg).to_string();
                let msg = format!("targets[{i}]{msg}");
                return Err(if e.is_instance_of::<PyTypeError>(obj.py()) {
                    PyTypeError::new_err(msg)
                } else {
                    PyValueError::new_err(msg)
                });
            }
        }
    }
    Ok(out)
}

/// `targets` of wait_for: one target or an iterable of them.
fn wait_targets_arg(obj: &Bound<'_, PyAny>, port: Option<u16>) -> PyResult<Vec<HostPort>> {
    let single = obj.is_instance_of::<PyString>()
        || (obj.is_instance_of::<PyTuple>()
            && obj.len()? == 2
            && obj.get_item(0)?.is_instance_of::<PyString>()
            && obj.get_item(1)?.is_instance_of::<PyInt>());
    if single {
        return Ok(vec![target_arg("targets", obj, port)?]);
    }
    let iter = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "targets must be a target or an iterable of targets, got {}",
            type_name(obj)
        ))
    })?;
    let mut out = Vec::new();
    for item in iter {
        out.push(target_arg("targets", &item?, port)?);
    }
    if out.is_empty() {
        return Err(PyValueError::new_err("targets: no target given"));
    }
    Ok(out)
}

/// `hosts` of scan: a string (commas or spaces separate) or an iterable
/// of strings; names, IP literals and CIDR blocks.
fn hosts_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<HostSpec>> {
    let mut texts: Vec<String> = Vec::new();
    if let Ok(s) = obj.cast::<PyString>() {
        texts.extend(split_hosts(s.to_str()?).map(str::to_string));
    } else {
        let iter = obj.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "hosts must be a str or an iterable of str, got {}",
                type_name(obj)
            ))
        })?;
        for item in iter {
            let item = item?;
            let s = item.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "hosts: each host must be a str, got {}",
                    type_name(&item)
                ))
            })?;
            texts.push(s.to_str()?.to_string());
        }
    }
    if texts.is_empty() {
        return Err(PyValueError::new_err("hosts: no host given"));
    }
    texts
        .iter()
        .map(|t| parse_host_spec("hosts", t).map_err(value_error))
        .collect()
}

/// `ports`: `"22,80,8000-8100"`, an int, a range, or an iterable of those.
fn ports_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u16>> {
    let mut set = PortSet::default();
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyInt>() {
        add_ports(&mut set, obj, true)?;
    } else if obj.try_iter().is_ok() {
        for item in obj.try_iter()? {
            add_ports(&mut set, &item?, true)?;
        }
    } else {
        add_ports(&mut set, obj, false)?;
    }
    if set.is_empty() {
        return Err(PyValueError::new_err("ports: no port given"));
    }
    Ok(set.into_vec())
}

/// One item of `ports`: a spec string, an int, or (inside a list) a range.
fn add_ports(set: &mut PortSet, item: &Bound<'_, PyAny>, ranges: bool) -> PyResult<()> {
    if let Ok(s) = item.cast::<PyString>() {
        set.add_spec("ports", s.to_str()?).map_err(value_error)
    } else if item.is_instance_of::<PyInt>() && !item.is_instance_of::<PyBool>() {
        set.insert(probe_port("ports", int_arg("ports", item)?).map_err(value_error)?);
        Ok(())
    } else if ranges && item.is_instance_of::<PyRange>() {
        for p in item.try_iter()? {
            add_ports(set, &p?, false)?;
        }
        Ok(())
    } else {
        Err(PyTypeError::new_err(format!(
            "ports must be a str like '22,80,8000-8100', an int, a range or a list of them, got {}",
            type_name(item)
        )))
    }
}

fn config(
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: &Bound<'_, PyAny>,
    rate: Option<&Bound<'_, PyAny>>,
) -> PyResult<Config> {
    let timeout = args::timeout("timeout", timeout)?;
    let concurrency =
        check_concurrency(int_arg("concurrency", concurrency)?).map_err(value_error)?;
    let rate = match rate {
        Some(r) if !r.is_none() => {
            if r.is_instance_of::<PyBool>() {
                return Err(PyTypeError::new_err("rate must be a number, got bool"));
            }
            let v: f64 = r.extract().map_err(|_| {
                PyTypeError::new_err(format!("rate must be a number, got {}", type_name(r)))
            })?;
            Some(check_rate(v).map_err(value_error)?)
        }
        _ => None,
    };
    Ok(Config {
        timeout,
        concurrency,
        rate,
        workers: None,
    })
}

/// Builds result tuples, caching the host and address strings.
struct Tuples<'py> {
    py: Python<'py>,
    labels: Vec<Option<Bound<'py, PyString>>>,
    addrs: HashMap<IpAddr, Bound<'py, PyString>>,
}

impl<'py> Tuples<'py> {
    fn new(py: Python<'py>, plan: &Plan) -> Self {
        Tuples {
            py,
            labels: vec![None; plan.hosts.len()],
            addrs: HashMap::new(),
        }
    }

    fn make(
        &mut self,
        plan: &Plan,
        r: &TargetResult,
        proto: &str,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let py = self.py;
        let (h, port) = plan.targets[r.target];
        let label = self.labels[h as usize]
            .get_or_insert_with(|| PyString::new(py, &plan.hosts[h as usize].label))
            .clone();
        let address = r.address.map(|a| {
            self.addrs
                .entry(a.ip())
                .or_insert_with(|| PyString::new(py, &a.ip().to_string()))
                .clone()
        });
        outcome_tuple(py, label, address, port, proto, &r.outcome)
    }
}

fn outcome_tuple<'py>(
    py: Python<'py>,
    host: Bound<'py, PyString>,
    address: Option<Bound<'py, PyString>>,
    port: u16,
    proto: &str,
    o: &Outcome,
) -> PyResult<Bound<'py, PyTuple>> {
    let proto = if proto == "udp" {
        pyo3::intern!(py, "udp")
    } else {
        pyo3::intern!(py, "tcp")
    };
    let state = match o.state {
        State::Open => pyo3::intern!(py, "open"),
        State::Closed => pyo3::intern!(py, "closed"),
        State::Filtered => pyo3::intern!(py, "filtered"),
        State::Error => pyo3::intern!(py, "error"),
        State::OpenFiltered => pyo3::intern!(py, "open|filtered"),
    };
    let rtt = o.rtt.map(|d| d.as_secs_f64() * 1000.0);
    (host, address, port, proto, state, rtt, o.error.as_deref()).into_pyobject(py)
}

/// Run a plan to the end without the GIL; `progress(done, total)` is
/// called with the GIL, and what it raises ends the run and propagates.
fn run_plan<'py>(
    py: Python<'py>,
    make_plan: impl FnOnce(&dyn crate::wait::Interrupt) -> crate::error::Result<Plan> + Send,
    cfg: &Config,
    progress: Option<Py<PyAny>>,
    limit: Option<usize>,
) -> PyResult<(Plan, Vec<TargetResult>)> {
    let cb_err: Mutex<Option<PyErr>> = Mutex::new(None);
    let r = blocking(py, |intr| {
        let plan = make_plan(intr)?;
        if let Some(max) = limit {
            if plan.targets.len() > max {
                return Err(Error::invalid(
                    "ports",
                    format!(
                        "{} hosts x ports = {} probes is more than scan() keeps ({max}); use scan_iter()",
                        plan.hosts.len(),
                        plan.targets.len()
                    ),
                ));
            }
        }
        let results = run_all(&plan, cfg, intr, &mut |done, total| match &progress {
            None => Ok(()),
            Some(cb) => Python::attach(|py| cb.call1(py, (done, total)).map(|_| ())).map_err(|e| {
                *cb_err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Error::Interrupted
            }),
        })?;
        Ok((plan, results))
    });
    r.map_err(|e| {
        cb_err
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or(e)
    })
}

fn progress_arg(progress: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    match progress {
        None => Ok(None),
        Some(p) if p.is_none() => Ok(None),
        Some(p) if p.is_callable() => Ok(Some(p.clone().unbind())),
        Some(p) => Err(PyTypeError::new_err(format!(
            "progress must be None or a callable(done, total), got {}",
            type_name(p)
        ))),
    }
}

/// `check_many` in the core: a list of result tuples, input order.
#[pyfunction]
#[pyo3(name = "_check_many")]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, rate=None, progress=None))]
pub fn check_many<'py>(
    py: Python<'py>,
    targets: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let default_conc = 512i64.into_pyobject(py)?.into_any();
    let cfg = config(timeout, concurrency.unwrap_or(&default_conc), rate)?;
    let targets = targets_arg(targets)?;
    let progress = progress_arg(progress)?;
    let timeout = cfg.timeout;
    let (plan, results) = run_plan(
        py,
        move |intr| plan_targets(&targets, timeout, intr),
        &cfg,
        progress,
        None,
    )?;
    let mut t = Tuples::new(py, &plan);
    let items = results
        .iter()
        .map(|r| t.make(&plan, r, "tcp"))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// `check` of one TCP target in the core: one result tuple.
#[pyfunction]
#[pyo3(name = "_check")]
#[pyo3(signature = (target, port=None, *, timeout=None))]
pub fn check<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let one = 1i64.into_pyobject(py)?.into_any();
    let cfg = config(timeout, &one, None)?;
    let timeout = cfg.timeout;
    let (plan, results) = run_plan(
        py,
        move |intr| plan_targets(std::slice::from_ref(&target), timeout, intr),
        &cfg,
        None,
        None,
    )?;
    Tuples::new(py, &plan).make(&plan, &results[0], "tcp")
}

/// `scan` in the core: (list of result tuples host by host, elapsed s).
#[pyfunction]
#[pyo3(name = "_scan")]
#[pyo3(signature = (hosts, ports, *, timeout=None, concurrency=None, rate=None, progress=None))]
pub fn scan<'py>(
    py: Python<'py>,
    hosts: &Bound<'py, PyAny>,
    ports: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let default_conc = 1024i64.into_pyobject(py)?.into_any();
    let cfg = config(timeout, concurrency.unwrap_or(&default_conc), rate)?;
    let hosts = hosts_arg(hosts)?;
    let ports = ports_arg(ports)?;
    let progress = progress_arg(progress)?;
    let timeout = cfg.timeout;
    let (plan, results) = run_plan(
        py,
        move |intr| plan_scan(&hosts, &ports, timeout, intr),
        &cfg,
        progress,
        Some(MAX_SCAN_TARGETS),
    )?;
    let mut t = Tuples::new(py, &plan);
    let items = results
        .iter()
        .map(|r| t.make(&plan, r, "tcp"))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

struct IterState {
    plan: Plan,
    run: Option<Run>,
    comb: Combiner,
    ready: VecDeque<TargetResult>,
}

/// Results of ``check_iter``/``scan_iter`` as they complete: an iterator
/// of result tuples fed by the probe threads. ``close()`` (or dropping it)
/// cancels the probes still running.
#[pyclass(module = "socketkit._core", frozen)]
pub struct ProbeIter {
    state: Mutex<IterState>,
    /// Outside the lock: `close()` from another thread must not wait for a
    /// `__next__` that is blocked (it holds the lock without the GIL).
    canceller: Canceller,
    total: usize,
}

impl ProbeIter {
    fn start(plan: Plan, cfg: &Config) -> crate::error::Result<Self> {
        let (comb, early) = Combiner::new(&plan);
        let total = comb.total;
        let run = Run::start(&plan, cfg)?;
        let canceller = run.canceller();
        Ok(ProbeIter {
            canceller,
            state: Mutex::new(IterState {
                plan,
                run: Some(run),
                comb,
                ready: early.into(),
            }),
            total,
        })
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
        if st.ready.is_empty() && st.run.is_some() {
            let r = blocking(py, |intr| {
                let IterState {
                    run, comb, ready, ..
                } = &mut *st;
                while let Some(active) = run.as_ref() {
                    match active.next_batch(SLICE / 2) {
                        None => {
                            *run = None;
                        }
                        Some(batch) => {
                            ready.extend(batch.into_iter().filter_map(|(j, o)| comb.add(j, o)));
                            if !ready.is_empty() {
                                break;
                            }
                        }
                    }
                    if let Err(e) = intr.check() {
                        if let Some(r) = run.take() {
                            r.stop();
                        }
                        return Err(e);
                    }
                }
                Ok(())
            });
            r?;
        }
        match st.ready.pop_front() {
            None => Ok(None),
            Some(r) => Tuples::new(py, &st.plan)
                .make(&st.plan, &r, "tcp")
                .map(Some),
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
            st.run = None;
            st.ready.clear();
        }
    }
}

/// `check_iter` in the core.
#[pyfunction]
#[pyo3(name = "_check_iter")]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, rate=None))]
pub fn check_iter<'py>(
    py: Python<'py>,
    targets: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
) -> PyResult<ProbeIter> {
    let default_conc = 512i64.into_pyobject(py)?.into_any();
    let cfg = config(timeout, concurrency.unwrap_or(&default_conc), rate)?;
    let targets = targets_arg(targets)?;
    let timeout = cfg.timeout;
    blocking(py, |intr| {
        let plan = plan_targets(&targets, timeout, intr)?;
        ProbeIter::start(plan, &cfg)
    })
}

/// `scan_iter` in the core.
#[pyfunction]
#[pyo3(name = "_scan_iter")]
#[pyo3(signature = (hosts, ports, *, timeout=None, concurrency=None, rate=None))]
pub fn scan_iter<'py>(
    py: Python<'py>,
    hosts: &Bound<'py, PyAny>,
    ports: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    rate: Option<&Bound<'py, PyAny>>,
) -> PyResult<ProbeIter> {
    let default_conc = 1024i64.into_pyobject(py)?.into_any();
    let cfg = config(timeout, concurrency.unwrap_or(&default_conc), rate)?;
    let hosts = hosts_arg(hosts)?;
    let ports = ports_arg(ports)?;
    let timeout = cfg.timeout;
    blocking(py, |intr| {
        let plan = plan_scan(&hosts, &ports, timeout, intr)?;
        ProbeIter::start(plan, &cfg)
    })
}

/// `tcping` in the core: (host, address, port, rtts_ms_or_None, errors).
#[pyfunction]
#[pyo3(name = "_tcping")]
#[pyo3(signature = (target, port, *, count, interval, timeout))]
#[allow(clippy::type_complexity)]
pub fn tcping(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
    count: &Bound<'_, PyAny>,
    interval: &Bound<'_, PyAny>,
    timeout: Option<&Bound<'_, PyAny>>,
) -> PyResult<(String, String, u16, Vec<Option<f64>>, Vec<Option<String>>)> {
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let count = int_arg("count", count)?;
    if count < 1 {
        return Err(PyValueError::new_err(format!(
            "count must be at least 1, got {count}"
        )));
    }
    let interval = args::seconds("interval", interval)?;
    let timeout = args::timeout("timeout", timeout)?;
    let run = blocking(py, |intr| {
        ping::tcping(&target, count as usize, interval, timeout, intr)
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

fn bytes_arg(arg: &'static str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u8>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => {
            let buf = args::ReadBuf::get(arg, o)?;
            Ok(Some(buf.as_slice().to_vec()))
        }
    }
}

/// `wait_for` in the core: seconds waited.
#[pyfunction]
#[pyo3(name = "_wait_for")]
#[pyo3(signature = (targets, port, *, timeout, interval, send, expect))]
pub fn wait_for(
    py: Python<'_>,
    targets: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
    timeout: Option<&Bound<'_, PyAny>>,
    interval: &Bound<'_, PyAny>,
    send: Option<&Bound<'_, PyAny>>,
    expect: Option<&Bound<'_, PyAny>>,
) -> PyResult<f64> {
    let port = port_arg(port)?;
    let targets = wait_targets_arg(targets, port)?;
    let timeout = args::timeout("timeout", timeout)?;
    let interval = args::seconds("interval", interval)?.max(Duration::from_millis(1));
    let ready = Readiness {
        send: bytes_arg("send", send)?,
        expect: bytes_arg("expect", expect)?,
    };
    blocking(py, |intr| {
        waitfor::wait_for(&targets, &ready, timeout, interval, intr)
    })
    .map(|d| d.as_secs_f64())
}

/// `banner` in the core.
#[pyfunction]
#[pyo3(name = "_banner")]
#[pyo3(signature = (target, port, *, send, timeout, max_bytes))]
pub fn banner<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    send: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    max_bytes: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let send = bytes_arg("send", send)?;
    let timeout = args::timeout("timeout", timeout)?;
    let max_bytes = args::size("max_bytes", max_bytes)?;
    if max_bytes == 0 {
        return Err(PyValueError::new_err("max_bytes must be at least 1, got 0"));
    }
    let data = blocking(py, |intr| {
        banner_core::banner(&target, send.as_deref(), timeout, max_bytes, intr)
    })?;
    Ok(pyo3::types::PyBytes::new(py, &data))
}

/// `udp_probe` in the core: one result tuple.
#[pyfunction]
#[pyo3(name = "_udp_probe")]
#[pyo3(signature = (target, port, payload, *, timeout, retries))]
pub fn udp_probe<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    payload: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    retries: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let payload = bytes_arg("payload", payload)?.unwrap_or_default();
    let timeout = args::timeout("timeout", timeout)?;
    let retries = args::size("retries", retries)?;
    let (addr, o): (SocketAddr, Outcome) = blocking(py, |intr| {
        udp::udp_probe(&target, &payload, timeout, retries, intr)
    })?;
    let host = PyString::new(py, &target.host);
    let address = PyString::new(py, &addr.ip().to_string());
    outcome_tuple(py, host, Some(address), addr.port(), "udp", &o)
}

/// Parse a port spec the way scan does (for tests and the CLI).
#[pyfunction]
#[pyo3(name = "_parse_ports")]
pub fn parse_ports(ports: &Bound<'_, PyAny>) -> PyResult<Vec<u16>> {
    ports_arg(ports)
}

/// Raise the soft RLIMIT_NOFILE to the hard limit; the descriptors a scan
/// may use.
#[pyfunction]
#[pyo3(name = "_fd_budget")]
pub fn fd_budget() -> usize {
    crate::probe::engine::fd_budget()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProbeIter>()?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(check_many, m)?)?;
    m.add_function(wrap_pyfunction!(check_iter, m)?)?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(scan_iter, m)?)?;
    m.add_function(wrap_pyfunction!(tcping, m)?)?;
    m.add_function(wrap_pyfunction!(wait_for, m)?)?;
    m.add_function(wrap_pyfunction!(banner, m)?)?;
    m.add_function(wrap_pyfunction!(udp_probe, m)?)?;
    m.add_function(wrap_pyfunction!(parse_ports, m)?)?;
    m.add_function(wrap_pyfunction!(fd_budget, m)?)?;
    Ok(())
}
