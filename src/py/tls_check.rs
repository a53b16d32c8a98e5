//! Bindings of `tls_check`, `tls_check_many` and `tls_check_iter`: the
//! service-check pool with TLS (or STARTTLS) and no dialogue, verification
//! recorded but never enforced, so that the certificate facts come back
//! whether or not it verified (`state` says which: "valid" / "invalid").

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::addr::HostPort;
use crate::probe::{Plan, State};
use crate::py::args::type_name;
use crate::py::blocking::{blocking, core};
use crate::py::probe::{state_name, timings_dict};
use crate::py::probe_args::{
    addr_control, config, port_arg, progress_arg, target_arg, targets_arg,
};
use crate::py::service::{
    run_prepared, start, starttls_arg, IterState, Prepared, ServiceIter, MAX_SERVICE_THREADS,
};
use crate::py::tls::{info_to_py, tls_arg};
use crate::service::{ServiceResult, ServiceRun, ServiceSpec, Steps};
use crate::tls::ClientTls;
use crate::wait::SLICE;

/// `(host, address, port, state, tls_info, timings, error)`, what
/// `socketkit.TlsResult` is made from.
pub(crate) fn tls_tuple<'py>(
    py: Python<'py>,
    plan: &Plan,
    r: &ServiceResult,
) -> PyResult<Bound<'py, PyTuple>> {
    let (h, port) = plan.targets[r.target];
    let (state, info) = match (&r.tls, r.outcome.state) {
        (Some(info), State::Open) => {
            let s = if info.verified { "valid" } else { "invalid" };
            (
                pyo3::types::PyString::intern(py, s),
                Some(info_to_py(py, info)?),
            )
        }
        (_, s) => (state_name(py, s).clone(), None),
    };
    (
        plan.hosts[h as usize].label.as_str(),
        r.address.map(|a| a.ip().to_string()),
        port,
        state,
        info,
        timings_dict(py, &r.timings)?,
        r.outcome.error.as_deref(),
    )
        .into_pyobject(py)
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    py: Python<'_>,
    targets: Vec<HostPort>,
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
    tls: Option<&Bound<'_, PyAny>>,
    starttls: Option<&Bound<'_, PyAny>>,
) -> PyResult<Prepared> {
    let cfg = config(timeout, concurrency, MAX_SERVICE_THREADS, None)?;
    let ctl = addr_control(family, source_address, false)?;
    let Some(mut tls_cfg) = tls_arg(tls)? else {
        return Err(PyTypeError::new_err(format!(
            "tls: a TLS check needs True or a socketkit.TlsConfig, got {}",
            tls.map_or("None".to_string(), |t| type_name(t).to_string())
        )));
    };
    // Verification is recorded, never enforced: an expired or unknown
    // certificate is a finding to report with its facts, not a failure.
    tls_cfg.verify = false;
    let client = Arc::new(core(py, ClientTls::new(&tls_cfg))?);
    let starttls = starttls_arg(starttls)?;
    Ok(Prepared {
        targets,
        spec: ServiceSpec {
            steps: Steps::Given(Vec::new()),
            tls: Some(client),
            tls_first: starttls.is_none(),
            starttls,
            source: ctl.source,
            timeout: cfg.timeout,
            banner: None,
        },
        ctl,
        concurrency: cfg.concurrency.min(MAX_SERVICE_THREADS),
    })
}

/// `tls_check` of one target.
#[pyfunction]
#[pyo3(name = "_tls_check")]
#[pyo3(signature = (target, port=None, *, timeout=None, tls=None, starttls=None, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn tls_check<'py>(
    py: Python<'py>,
    target: &Bound<'py, PyAny>,
    port: Option<&Bound<'py, PyAny>>,
    timeout: Option<&Bound<'py, PyAny>>,
    tls: Option<&Bound<'py, PyAny>>,
    starttls: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let p = prepare(
        py,
        vec![target],
        timeout,
        None,
        family,
        source_address,
        tls,
        starttls,
    )?;
    let (run, results) = run_prepared(py, p, None)?;
    let r = results
        .first()
        .ok_or_else(|| PyRuntimeError::new_err("tls_check: no result"))?;
    tls_tuple(py, run.plan(), r)
}

/// `tls_check_many`: result tuples in input order.
#[pyfunction]
#[pyo3(name = "_tls_check_many")]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, progress=None, tls=None, starttls=None, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn tls_check_many<'py>(
    py: Python<'py>,
    targets: &Bound<'py, PyAny>,
    timeout: Option<&Bound<'py, PyAny>>,
    concurrency: Option<&Bound<'py, PyAny>>,
    progress: Option<&Bound<'py, PyAny>>,
    tls: Option<&Bound<'py, PyAny>>,
    starttls: Option<&Bound<'py, PyAny>>,
    family: Option<&Bound<'py, PyAny>>,
    source_address: Option<&Bound<'py, PyAny>>,
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
        tls,
        starttls,
    )?;
    PyList::new(py, collect_converted(py, p, progress)?)
}

/// Run `p` and convert each result as it arrives, while the other checks
/// are still in flight (the workers need no GIL), rather than all of them
/// after the last one: that conversion was a serial tail of about 20 us
/// per result. `progress(done, total)` at the start, at most every 100 ms,
/// and at the end, as `ServiceRun::collect` calls it.
fn collect_converted<'py>(
    py: Python<'py>,
    p: Prepared,
    progress: Option<Py<PyAny>>,
) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let mut run = blocking(py, |intr| start(p, intr))?;
    let total = run.total;
    let report = |run: &mut ServiceRun, done: usize| -> PyResult<()> {
        match &progress {
            Some(cb) => cb
                .call1(py, (done, total))
                .map(|_| ())
                .inspect_err(|_| run.stop()),
            None => Ok(()),
        }
    };
    report(&mut run, 0)?;
    let mut out: Vec<Option<Bound<'py, PyTuple>>> = vec![None; total];
    let mut last = Instant::now();
    loop {
        let batch = blocking(py, |intr| run.wait(intr))?;
        if batch.is_empty() {
            break;
        }
        for r in &batch {
            match tls_tuple(py, run.plan(), r) {
                Ok(t) => out[r.target] = Some(t),
                Err(e) => {
                    run.stop();
                    return Err(e);
                }
            }
        }
        if last.elapsed() >= SLICE && run.done < total {
            last = Instant::now();
            let done = run.done;
            report(&mut run, done)?;
        }
    }
    let done = run.done;
    report(&mut run, done)?;
    out.into_iter()
        .enumerate()
        .map(|(t, r)| match r {
            Some(r) => Ok(r),
            None => tls_tuple(py, run.plan(), &ServiceResult::not_checked(t)),
        })
        .collect()
}

/// `tls_check_iter`: results as they finish.
#[pyfunction]
#[pyo3(name = "_tls_check_iter")]
#[pyo3(signature = (targets, *, timeout=None, concurrency=None, tls=None, starttls=None, family=None, source_address=None))]
#[allow(clippy::too_many_arguments)]
pub fn tls_check_iter(
    py: Python<'_>,
    targets: &Bound<'_, PyAny>,
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    tls: Option<&Bound<'_, PyAny>>,
    starttls: Option<&Bound<'_, PyAny>>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
) -> PyResult<ServiceIter> {
    let targets = targets_arg(targets)?;
    let p = prepare(
        py,
        targets,
        timeout,
        concurrency,
        family,
        source_address,
        tls,
        starttls,
    )?;
    let run = blocking(py, |intr| start(p, intr))?;
    Ok(ServiceIter {
        cancel: run.canceller(),
        total: run.total,
        tls_results: true,
        state: Mutex::new(IterState {
            run,
            ready: Default::default(),
        }),
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tls_check, m)?)?;
    m.add_function(wrap_pyfunction!(tls_check_many, m)?)?;
    m.add_function(wrap_pyfunction!(tls_check_iter, m)?)?;
    Ok(())
}
