//! Arguments of the probes: targets, hosts, ports and the knobs of a run,
//! converted from Python with errors that name the argument and the value.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyInt, PyList, PyMemoryView, PyRange, PyString, PyTuple,
};

use std::net::{IpAddr, SocketAddr};

use crate::addr::{Family, HostPort, PortUse};
use crate::defaults;
use crate::probe::target::{
    check_concurrency, check_rate, parse_host_spec, parse_target, split_hosts, PortSet,
};
use crate::probe::{plan_scan, plan_targets, AddrControl, Config, HostSpec, Plan};
use crate::py::args::{self, type_name, value_error, Int};

/// `port=` of the single-target probes.
pub(crate) fn port_arg(port: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u16>> {
    args::optional(port, |p| probed_port("port", p))
}

/// A port to probe, given as an int: 1-65535.
fn probed_port(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<u16> {
    // The Python int itself in the message: past i128 the value saturated.
    PortUse::Remote
        .check(arg, args::int(arg, obj)?.0)
        .map_err(|_| value_error(PortUse::Remote.out_of_range(arg, obj)))
}

/// An int as i64, a value past i64 saturated (out of every range anyway).
pub(crate) fn saturated(n: Int) -> i64 {
    i64::try_from(n.0).unwrap_or(if n.0 < 0 { i64::MIN } else { i64::MAX })
}

/// One target: `"host:port"`, `"[v6]:port"`, `(host, port)`, or a bare host
/// with `port` given separately.
pub(crate) fn target_arg(
    arg: &'static str,
    obj: &Bound<'_, PyAny>,
    port: Option<u16>,
) -> PyResult<HostPort> {
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
        return args::address_as(arg, obj, PortUse::Remote);
    }
    Err(PyTypeError::new_err(format!(
        "{arg} must be 'host:port', '[v6]:port' or (host, port), got {}",
        type_name(obj)
    )))
}

/// `targets` of check_many: an iterable of targets; errors say which item.
pub(crate) fn targets_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<HostPort>> {
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
        // A million targets take seconds to convert, with the GIL held:
        // let Ctrl-C in (issue 15 item 9).
        if i % 4096 == 4095 {
            obj.py().check_signals()?;
        }
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
pub(crate) fn wait_targets_arg(
    obj: &Bound<'_, PyAny>,
    port: Option<u16>,
) -> PyResult<Vec<HostPort>> {
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
pub(crate) fn hosts_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<HostSpec>> {
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
pub(crate) fn ports_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u16>> {
    let mut set = PortSet::default();
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyInt>() {
        add_ports(&mut set, obj, true)?;
    } else if obj.is_instance_of::<PyBytes>()
        || obj.is_instance_of::<PyByteArray>()
        || obj.is_instance_of::<PyMemoryView>()
    {
        // Iterable, but of byte values: b"80" would scan ports 56 and 48.
        add_ports(&mut set, obj, false)?;
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
        set.insert(probed_port("ports", item)?);
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

/// The knobs of a run; `concurrency` absent or `None` is `default_concurrency`.
pub(crate) fn config(
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    default_concurrency: usize,
    rate: Option<&Bound<'_, PyAny>>,
) -> PyResult<Config> {
    let timeout = args::timeout("timeout", timeout)?;
    let concurrency = match args::optional(concurrency, |c| args::int("concurrency", c))? {
        Some(n) => check_concurrency(saturated(n)).map_err(value_error)?,
        None => default_concurrency,
    };
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
        source: None,
    })
}

pub(crate) fn progress_arg(progress: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
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

pub(crate) fn bytes_arg(
    arg: &'static str,
    obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Vec<u8>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => {
            let buf = args::ReadBuf::get(arg, o)?;
            Ok(Some(buf.as_slice().to_vec()))
        }
    }
}

/// `family=`: None, "ipv4" or "ipv6".
pub(crate) fn family_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Family> {
    match obj {
        None => Ok(Family::Any),
        Some(o) if o.is_none() => Ok(Family::Any),
        Some(o) => {
            let s = o.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "family must be None, 'ipv4' or 'ipv6', got {}",
                    type_name(o)
                ))
            })?;
            Family::parse("family", s.to_str()?).map_err(value_error)
        }
    }
}

/// `source_address=`: `(ip, port)` (port 0 for any), or an IP alone. The
/// host must be an IP literal: it names a local address to bind to.
pub(crate) fn source_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<SocketAddr>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let hp = match o.cast::<PyString>() {
        Ok(s) if s.to_str()?.parse::<IpAddr>().is_ok() => HostPort::new(s.to_str()?, 0),
        _ => args::address("source_address", o)?,
    };
    let ip: IpAddr = hp.host.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "source_address: the host must be a local IP address, got {:?}",
            hp.host
        ))
    })?;
    Ok(Some(SocketAddr::new(ip, hp.port)))
}

/// `family=`, `source_address=` and `each_address=` together.
pub(crate) fn addr_control(
    family: Option<&Bound<'_, PyAny>>,
    source: Option<&Bound<'_, PyAny>>,
    each_address: bool,
) -> PyResult<AddrControl> {
    let ctl = AddrControl {
        family: family_arg(family)?,
        source: source_arg(source)?,
        each_address,
    };
    // A family the source address cannot reach is the caller's mistake.
    ctl.family
        .with_source(ctl.source.as_ref())
        .map_err(value_error)?;
    Ok(ctl)
}

/// Makes the plan of a connect-scan run, given the run's interrupt.
pub(crate) type Planner =
    Box<dyn FnOnce(&dyn crate::wait::Interrupt) -> crate::error::Result<Plan> + Send>;

/// A connect-scan run's arguments, converted once for the blocking call,
/// its iterator and its awaitable (check, check_many, scan and friends).
pub(crate) struct Job {
    pub cfg: Config,
    pub plan: Planner,
}

fn job(
    ctl: AddrControl,
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    default_concurrency: usize,
    rate: Option<&Bound<'_, PyAny>>,
    plan: impl FnOnce(Option<std::time::Duration>, AddrControl) -> Planner,
) -> PyResult<Job> {
    let mut cfg = config(timeout, concurrency, default_concurrency, rate)?;
    cfg.source = ctl.source;
    let plan = plan(cfg.timeout, ctl);
    Ok(Job { cfg, plan })
}

/// `check(target, port, ...)`: one target.
pub(crate) fn check_job(
    target: &Bound<'_, PyAny>,
    port: Option<&Bound<'_, PyAny>>,
    timeout: Option<&Bound<'_, PyAny>>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
) -> PyResult<Job> {
    let port = port_arg(port)?;
    let target = target_arg("target", target, port)?;
    let ctl = addr_control(family, source_address, false)?;
    job(ctl, timeout, None, 1, None, |t, ctl| {
        Box::new(move |intr| plan_targets(std::slice::from_ref(&target), t, &ctl, intr))
    })
}

/// `check_many(targets, ...)` and `check_iter`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn targets_job(
    targets: &Bound<'_, PyAny>,
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    rate: Option<&Bound<'_, PyAny>>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
    each_address: bool,
) -> PyResult<Job> {
    let ctl = addr_control(family, source_address, each_address)?;
    let targets = targets_arg(targets)?;
    job(
        ctl,
        timeout,
        concurrency,
        defaults::CHECK_CONCURRENCY,
        rate,
        |t, ctl| Box::new(move |intr| plan_targets(&targets, t, &ctl, intr)),
    )
}

/// `scan(hosts, ports, ...)` and `scan_iter`.
pub(crate) fn scan_job(
    hosts: &Bound<'_, PyAny>,
    ports: &Bound<'_, PyAny>,
    timeout: Option<&Bound<'_, PyAny>>,
    concurrency: Option<&Bound<'_, PyAny>>,
    rate: Option<&Bound<'_, PyAny>>,
    family: Option<&Bound<'_, PyAny>>,
    source_address: Option<&Bound<'_, PyAny>>,
) -> PyResult<Job> {
    let ctl = addr_control(family, source_address, false)?;
    let hosts = hosts_arg(hosts)?;
    let ports = ports_arg(ports)?;
    job(
        ctl,
        timeout,
        concurrency,
        defaults::SCAN_CONCURRENCY,
        rate,
        |t, ctl| Box::new(move |intr| plan_scan(&hosts, &ports, t, &ctl, intr)),
    )
}
