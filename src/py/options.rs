//! Socket options from keyword arguments, and `options()` back to a dict.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::options::{Keepalive as CoreKeepalive, OptValue, SocketOptions};
use crate::py::args::{self, seconds};

/// TCP keepalive timers, in seconds: ``Keepalive(idle=60, interval=10, retries=5)``.
///
/// ``idle``: how long a connection sits idle before the first probe;
/// ``interval``: time between unanswered probes; ``retries``: how many
/// unanswered probes drop the connection. ``None`` keeps the kernel's value.
/// Pass it as ``keepalive=Keepalive(...)``; ``keepalive=True`` turns
/// keepalive on with the kernel's timers.
#[pyclass(module = "socketkit._core", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct Keepalive {
    #[pyo3(get)]
    idle: Option<f64>,
    #[pyo3(get)]
    interval: Option<f64>,
    #[pyo3(get)]
    retries: Option<u32>,
}

#[pymethods]
impl Keepalive {
    #[new]
    #[pyo3(signature = (idle=None, interval=None, retries=None))]
    fn new(
        idle: Option<&Bound<'_, PyAny>>,
        interval: Option<&Bound<'_, PyAny>>,
        retries: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let secs = |name: &'static str, v: Option<&Bound<'_, PyAny>>| -> PyResult<Option<f64>> {
            match v {
                Some(o) if !o.is_none() => {
                    let d = seconds(name, o)?;
                    if d < Duration::from_secs(1) {
                        return Err(PyValueError::new_err(format!("{name} must be at least 1 second (the kernel counts whole seconds), got {}", d.as_secs_f64())));
                    }
                    Ok(Some(d.as_secs_f64()))
                }
                _ => Ok(None),
            }
        };
        let retries = match retries {
            Some(o) if !o.is_none() => Some(args::int_in::<u32>("retries", o, 1, 127)?),
            _ => None,
        };
        Ok(Keepalive {
            idle: secs("idle", idle)?,
            interval: secs("interval", interval)?,
            retries,
        })
    }

    fn __repr__(&self) -> String {
        let f = |v: Option<f64>| v.map_or("None".to_string(), |x| format!("{x}"));
        format!(
            "Keepalive(idle={}, interval={}, retries={})",
            f(self.idle),
            f(self.interval),
            self.retries.map_or("None".into(), |r| r.to_string())
        )
    }
}

impl Keepalive {
    fn to_core(&self) -> CoreKeepalive {
        CoreKeepalive::Tuned {
            idle: self.idle.map(Duration::from_secs_f64),
            interval: self.interval.map(Duration::from_secs_f64),
            retries: self.retries,
        }
    }
}

/// Build options from `**options`; `who` names the callable in errors.
pub fn from_kwargs(who: &str, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<SocketOptions> {
    let mut o = SocketOptions::default();
    let Some(kw) = kwargs else { return Ok(o) };
    for (k, v) in kw.iter() {
        let key = k.cast::<PyString>()?.to_str()?.to_owned();
        let name = key.as_str();
        match name {
            "nodelay" => o.nodelay = Some(args::boolean(name, &v)?),
            "keepalive" => {
                o.keepalive = Some(if let Ok(ka) = v.cast::<Keepalive>() {
                    ka.get().to_core()
                } else if args::boolean(name, &v).map_err(|_| {
                    PyTypeError::new_err(
                        "keepalive must be True, False or a Keepalive(idle=, interval=, retries=)",
                    )
                })? {
                    CoreKeepalive::On
                } else {
                    CoreKeepalive::Off
                })
            }
            "linger" => {
                o.linger = Some(if v.is_none() {
                    None
                } else {
                    Some(seconds("linger", &v)?)
                });
            }
            "user_timeout" => o.user_timeout = Some(seconds("user_timeout", &v)?),
            "recv_buffer" => {
                o.recv_buffer = Some(args::int_in::<usize>(name, &v, 1, i32::MAX.into())?)
            }
            "send_buffer" => {
                o.send_buffer = Some(args::int_in::<usize>(name, &v, 1, i32::MAX.into())?)
            }
            "reuse_address" => o.reuse_address = Some(args::boolean(name, &v)?),
            "reuse_port" => o.reuse_port = Some(args::boolean(name, &v)?),
            "ttl" => o.ttl = Some(args::int_in::<u32>(name, &v, 1, 255)?),
            "tos" => o.tos = Some(args::int_in::<u32>(name, &v, 0, 255)?),
            "only_v6" => o.only_v6 = Some(args::boolean(name, &v)?),
            "bind_device" => {
                let s = v.cast::<PyString>().map_err(|_| {
                    PyTypeError::new_err("bind_device must be an interface name (str)")
                })?;
                o.bind_device = Some(s.to_str()?.to_owned());
            }
            "broadcast" => o.broadcast = Some(args::boolean(name, &v)?),
            "multicast_ttl" => o.multicast_ttl = Some(args::int_in::<u32>(name, &v, 0, 255)?),
            "multicast_loop" => o.multicast_loop = Some(args::boolean(name, &v)?),
            other => {
                return Err(PyTypeError::new_err(format!(
                    "{who}() got an unexpected keyword argument '{other}' (socket options: {})",
                    crate::options::OPTION_NAMES.join(", ")
                )))
            }
        }
    }
    Ok(o)
}

/// `options()` result: a dict of what the kernel holds.
pub fn to_dict<'py>(
    py: Python<'py>,
    values: Vec<(&'static str, OptValue)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in values {
        match v {
            OptValue::Bool(b) => d.set_item(k, b)?,
            OptValue::Int(i) => d.set_item(k, i)?,
            OptValue::Seconds(s) => d.set_item(k, s)?,
            OptValue::Text(t) => d.set_item(k, t)?,
            OptValue::Unset => d.set_item(k, py.None())?,
        }
    }
    Ok(d)
}
