//! Binding of `wait_for` without a dialogue: `_wait_until` (open, closed,
//! drained, delay and a per-attempt connect timeout).

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::probe::drain;
use crate::probe::waitfor::{self, Readiness, WaitSpec, WaitState};
use crate::py::args;
use crate::py::blocking::blocking;
use crate::py::probe_args::{bytes_arg, port_arg, wait_targets_arg};

fn ignore_arg(ignore: &Bound<'_, PyAny>) -> PyResult<Vec<&'static str>> {
    if ignore.is_instance_of::<pyo3::types::PyString>() {
        return Err(PyTypeError::new_err(
            "drain_ignore must be a sequence of TCP state names, not a str",
        ));
    }
    let mut out = Vec::new();
    for item in ignore.try_iter()? {
        let name: String = item?.extract()?;
        out.push(drain::state_named(&name).map_err(args::value_error)?);
    }
    Ok(out)
}

/// `wait_for(..., state=, delay=, connect_timeout=, drain_ignore=)` in the
/// core: seconds waited.
#[pyfunction]
#[pyo3(name = "_wait_until")]
#[pyo3(signature = (targets, port, *, timeout, interval, send, expect, state, delay, connect_timeout, drain_ignore))]
#[allow(clippy::too_many_arguments)]
pub fn wait_until(
    py: Python<'_>,
    targets: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
    timeout: Option<&Bound<'_, PyAny>>,
    interval: &Bound<'_, PyAny>,
    send: Option<&Bound<'_, PyAny>>,
    expect: Option<&Bound<'_, PyAny>>,
    state: &str,
    delay: &Bound<'_, PyAny>,
    connect_timeout: Option<&Bound<'_, PyAny>>,
    drain_ignore: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let state = match state {
        "open" => WaitState::Open,
        "closed" => WaitState::Closed,
        "drained" => WaitState::Drained(ignore_arg(drain_ignore)?),
        other => {
            return Err(PyValueError::new_err(format!(
                "state must be 'open', 'closed' or 'drained', got {other:?}"
            )))
        }
    };
    let ready = Readiness {
        send: bytes_arg("send", send)?,
        expect: bytes_arg("expect", expect)?,
    };
    if state != WaitState::Open && (ready.send.is_some() || ready.expect.is_some()) {
        return Err(PyValueError::new_err(
            "send and expect are for state='open' only",
        ));
    }
    let port = port_arg(port)?;
    let targets = wait_targets_arg(targets, port)?;
    let spec = WaitSpec {
        state,
        ready,
        delay: args::seconds("delay", delay)?,
        connect_timeout: args::timeout("connect_timeout", connect_timeout)?,
    };
    if spec.connect_timeout == Some(Duration::ZERO) {
        return Err(PyValueError::new_err(
            "connect_timeout must be more than 0, got 0",
        ));
    }
    let timeout = args::timeout("timeout", timeout)?;
    let interval = args::seconds("interval", interval)?.max(Duration::from_millis(1));
    blocking(py, |intr| {
        waitfor::wait_until(&targets, &spec, timeout, interval, intr)
    })
    .map(|d| d.as_secs_f64())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(wait_until, m)?)?;
    Ok(())
}
