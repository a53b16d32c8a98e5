//! Socket options from keyword arguments, and `options()` back to a dict.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::options::{
    self, Keepalive as CoreKeepalive, Kind, OptValue, Proto, SocketOptions, Spec, Value,
};
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

    /// Pickling (options travel to worker processes): rebuilt from its timers.
    #[allow(clippy::type_complexity)]
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> (
        Bound<'py, pyo3::types::PyType>,
        (Option<f64>, Option<f64>, Option<u32>),
    ) {
        let k = slf.get();
        (slf.get_type(), (k.idle, k.interval, k.retries))
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
/// Every keyword is looked up in the option table, which gives its kind and
/// range; the extractors of `args` convert and check it.
pub fn from_kwargs(who: &str, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<SocketOptions> {
    let mut o = SocketOptions::default();
    let Some(kw) = kwargs else { return Ok(o) };
    for (k, v) in kw.iter() {
        let key = k.cast::<PyString>()?;
        let name = key.to_str()?;
        let Some(spec) = options::spec(name) else {
            return Err(unknown(who, name));
        };
        o.set(spec, value(spec, &v)?).map_err(args::value_error)?;
    }
    Ok(o)
}

fn unknown(who: &str, name: &str) -> PyErr {
    let hint = options::suggest(name)
        .map(|n| format!("did you mean '{n}'? "))
        .unwrap_or_default();
    PyTypeError::new_err(format!(
        "{who}() got an unexpected keyword argument '{name}' ({hint}socket options: {})",
        options::names().collect::<Vec<_>>().join(", ")
    ))
}

/// One keyword's value, converted as its kind says.
fn value(spec: &Spec, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let name = spec.name;
    Ok(match spec.kind {
        Kind::Bool => Value::Bool(args::boolean(name, v)?),
        Kind::Int { lo, hi } => Value::Int(args::int_in(name, v, lo.into(), hi.into())?),
        Kind::Seconds => Value::Seconds(seconds(name, v)?),
        Kind::SecondsOrNone => Value::SecondsOrNone(args::optional(Some(v), |o| seconds(name, o))?),
        Kind::Interface => {
            let s = v.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!("{name} must be an interface name (str)"))
            })?;
            Value::Text(s.to_str()?.to_owned())
        }
        Kind::Keepalive => Value::Keepalive(if let Ok(ka) = v.cast::<Keepalive>() {
            ka.get().to_core()
        } else if args::boolean(name, v).map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be True, False or a Keepalive(idle=, interval=, retries=)"
            ))
        })? {
            CoreKeepalive::On
        } else {
            CoreKeepalive::Off
        }),
    })
}

/// The Python type of a keyword of `kind`, for the runtime TypedDicts.
fn python_type<'py>(py: Python<'py>, kind: Kind) -> PyResult<Bound<'py, PyAny>> {
    Ok(match kind {
        Kind::Bool => py.get_type::<PyBool>().into_any(),
        Kind::Int { .. } => py.get_type::<PyInt>().into_any(),
        Kind::Seconds => py.get_type::<PyFloat>().into_any(),
        Kind::SecondsOrNone => py.get_type::<PyFloat>().into_any().bitor(py.None())?,
        Kind::Interface => py.get_type::<PyString>().into_any(),
        Kind::Keepalive => py
            .get_type::<PyBool>()
            .into_any()
            .bitor(py.get_type::<Keepalive>())?,
    })
}

/// `TcpOptions` / `UdpOptions`: TypedDicts of each protocol's options, made
/// from the option table (the stub declares the same, checked by
/// `cargo test`), so user code can annotate the options it passes on.
fn typed_dict<'py>(py: Python<'py>, proto: Proto) -> PyResult<Bound<'py, PyAny>> {
    let (class, takers) = proto.typed_dict();
    let fields = PyDict::new(py);
    let mut doc = format!(
        "Socket options of a {} socket: the ``**options`` of {takers}.\n",
        proto.name()
    );
    for spec in proto.options() {
        fields.set_item(spec.name, python_type(py, spec.kind)?)?;
        doc += &format!("\n{} ({}): {}", spec.name, spec.kind.describe(), spec.doc());
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("total", false)?;
    let td = py
        .import("typing")?
        .getattr("TypedDict")?
        .call((class, fields), Some(&kwargs))?;
    td.setattr("__module__", "socketkit._core")?;
    td.setattr("__doc__", doc)?;
    Ok(td)
}

/// Add `Keepalive`, `TcpOptions` and `UdpOptions` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Keepalive>()?;
    for proto in [Proto::Tcp, Proto::Udp] {
        m.add(proto.typed_dict().0, typed_dict(m.py(), proto)?)?;
    }
    Ok(())
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
