//! The one place that turns core errors into Python exceptions. The classes
//! live in `socketkit/exceptions.py` (they need two builtin bases each).

use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::error::{Attempt, Error};

/// The socketkit exception class for an errno.
fn class_for_errno(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::ECONNREFUSED) => "ConnectionRefusedError",
        Some(libc::ECONNRESET) => "ConnectionResetError",
        Some(libc::ECONNABORTED) => "ConnectionAbortedError",
        Some(libc::EPIPE) => "BrokenPipeError",
        Some(libc::EADDRINUSE) => "AddressInUseError",
        Some(libc::ETIMEDOUT) => "TimeoutError",
        _ => "Error",
    }
}

/// Which class a failed multi-address connect raises: a timeout if any
/// attempt ran out of time, refused if every address refused, else the
/// first failure's class.
fn class_for_attempts(attempts: &[Attempt]) -> (&'static str, Option<i32>) {
    if attempts
        .iter()
        .any(|a| a.error.kind() == std::io::ErrorKind::TimedOut)
    {
        return ("TimeoutError", Some(libc::ETIMEDOUT));
    }
    if !attempts.is_empty()
        && attempts
            .iter()
            .all(|a| a.error.raw_os_error() == Some(libc::ECONNREFUSED))
    {
        return ("ConnectionRefusedError", Some(libc::ECONNREFUSED));
    }
    let errno = attempts.first().and_then(|a| a.error.raw_os_error());
    (class_for_errno(errno), errno)
}

/// The class name and errno that `err` maps to (None for ValueError).
pub fn classify(err: &Error) -> (&'static str, Option<i32>) {
    match err {
        Error::InvalidArgument { .. } => ("ValueError", None),
        Error::Io { source, .. } => {
            let errno = source.raw_os_error();
            (class_for_errno(errno), errno)
        }
        Error::Timeout { .. } => ("TimeoutError", Some(libc::ETIMEDOUT)),
        Error::Resolve { code, .. } => ("ResolveError", Some(*code)),
        Error::Connect { attempts, .. } => class_for_attempts(attempts),
        Error::Closed { .. } => ("ConnectionClosedError", None),
        Error::LimitExceeded { .. } => ("LimitExceededError", Some(libc::EMSGSIZE)),
        Error::SendAll { source, .. } => classify(source),
        Error::Unsupported { .. } => ("Error", Some(libc::ENOPROTOOPT)),
        Error::ClosedSocket | Error::Stopped => ("Error", Some(libc::EBADF)),
        Error::NotReady { .. } => ("TimeoutError", Some(libc::ETIMEDOUT)),
        Error::Interrupted => ("KeyboardInterrupt", None),
    }
}

fn phase_and_address(err: &Error) -> (Option<&'static str>, Option<String>) {
    match err {
        Error::Io { phase, address, .. } | Error::Timeout { phase, address } => {
            (Some(phase.as_str()), address.clone())
        }
        Error::Resolve { host, .. } => (Some("resolve"), Some(host.clone())),
        Error::Connect { target, .. } => (Some("connect"), Some(target.clone())),
        Error::Closed { .. } | Error::LimitExceeded { .. } => (Some("recv"), None),
        Error::SendAll { source, .. } => {
            let (_, a) = phase_and_address(source);
            (Some("send"), a)
        }
        Error::Unsupported { option, .. } => (Some("option"), Some((*option).to_string())),
        Error::NotReady { down, .. } => {
            let names: Vec<&str> = down.iter().map(|(t, _)| t.as_str()).collect();
            (Some("connect"), Some(names.join(", ")))
        }
        _ => (None, None),
    }
}

/// Convert a core error. `pending` is the exception a signal handler raised
/// during the call, re-raised for `Error::Interrupted`.
pub fn to_pyerr(py: Python<'_>, err: Error, pending: Option<PyErr>) -> PyErr {
    match build(py, err, pending) {
        Ok(e) => e,
        Err(e) => e,
    }
}

fn build(py: Python<'_>, err: Error, pending: Option<PyErr>) -> PyResult<PyErr> {
    let (class, errno) = classify(&err);
    match class {
        "KeyboardInterrupt" => {
            return Ok(pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err(())))
        }
        "ValueError" => return Ok(PyValueError::new_err(err.to_string())),
        _ => {}
    }
    let module = py.import("socketkit.exceptions")?;
    let cls = module.getattr(class)?;
    let message = err.to_string();
    let exc = match errno {
        Some(n) => cls.call1((n, message))?,
        None => cls.call1((message,))?,
    };
    let (phase, address) = phase_and_address(&err);
    if let Some(p) = phase {
        exc.setattr("phase", p)?;
    }
    if let Some(a) = address {
        exc.setattr("address", a)?;
    }
    match &err {
        Error::Connect { attempts, .. } => exc.setattr("attempts", attempts_list(py, attempts)?)?,
        Error::Closed { partial, .. } => {
            exc.setattr("partial", pyo3::types::PyBytes::new(py, partial))?
        }
        Error::SendAll { bytes_sent, .. } => exc.setattr("bytes_sent", *bytes_sent)?,
        Error::NotReady { down, .. } => {
            let names: Vec<&str> = down.iter().map(|(t, _)| t.as_str()).collect();
            exc.setattr("targets", names)?
        }
        _ => {}
    }
    Ok(PyErr::from_value(exc))
}

fn attempts_list<'py>(py: Python<'py>, attempts: &[Attempt]) -> PyResult<Bound<'py, PyList>> {
    let items: Vec<Bound<'py, PyTuple>> = attempts
        .iter()
        .map(|a| {
            let addr = (a.address.ip().to_string(), a.address.port());
            PyTuple::new(
                py,
                [
                    addr.into_pyobject(py)?.into_any(),
                    a.error.raw_os_error().into_pyobject(py)?.into_any(),
                    crate::error::strerror(&a.error)
                        .into_pyobject(py)?
                        .into_any(),
                ],
            )
        })
        .collect::<PyResult<_>>()?;
    PyList::new(py, items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Phase;
    use std::io;

    #[test]
    fn errno_picks_the_class() {
        let e = Error::io(
            Phase::Connect,
            None,
            io::Error::from_raw_os_error(libc::ECONNREFUSED),
        );
        assert_eq!(
            classify(&e),
            ("ConnectionRefusedError", Some(libc::ECONNREFUSED))
        );
        let e = Error::io(
            Phase::Recv,
            None,
            io::Error::from_raw_os_error(libc::ECONNRESET),
        );
        assert_eq!(classify(&e).0, "ConnectionResetError");
        let e = Error::io(
            Phase::Bind,
            None,
            io::Error::from_raw_os_error(libc::EADDRINUSE),
        );
        assert_eq!(classify(&e).0, "AddressInUseError");
        let e = Error::io(Phase::Recv, None, io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(classify(&e), ("Error", Some(libc::EIO)));
    }

    #[test]
    fn timeouts_and_resolution() {
        assert_eq!(
            classify(&Error::timeout(Phase::Recv, None)).0,
            "TimeoutError"
        );
        let e = Error::Resolve {
            host: "x".into(),
            code: -2,
            message: "Name or service not known".into(),
        };
        assert_eq!(classify(&e), ("ResolveError", Some(-2)));
    }

    #[test]
    fn connect_class_from_attempts() {
        let refused = |a: &str| Attempt {
            address: a.parse().unwrap(),
            error: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        let e = Error::Connect {
            target: "t".into(),
            attempts: vec![refused("[::1]:1"), refused("127.0.0.1:1")],
        };
        assert_eq!(classify(&e).0, "ConnectionRefusedError");
        let e = Error::Connect {
            target: "t".into(),
            attempts: vec![
                refused("[::1]:1"),
                Attempt {
                    address: "127.0.0.1:1".parse().unwrap(),
                    error: io::Error::from(io::ErrorKind::TimedOut),
                },
            ],
        };
        assert_eq!(classify(&e).0, "TimeoutError");
    }

    #[test]
    fn sendall_keeps_inner_class() {
        let e = Error::SendAll {
            bytes_sent: 5,
            source: Box::new(Error::io(
                Phase::Send,
                None,
                io::Error::from_raw_os_error(libc::EPIPE),
            )),
        };
        assert_eq!(classify(&e).0, "BrokenPipeError");
        assert_eq!(phase_and_address(&e).0, Some("send"));
    }

    #[test]
    fn bad_arguments_are_value_errors() {
        assert_eq!(classify(&Error::invalid("port", "x")).0, "ValueError");
        assert_eq!(classify(&Error::Interrupted).0, "KeyboardInterrupt");
        assert_eq!(classify(&Error::Stopped), ("Error", Some(libc::EBADF)));
    }
}
