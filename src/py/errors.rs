//! The one place that turns core errors into Python exceptions. The classes
//! live in `socketkit/exceptions.py` (they need two builtin bases each) and
//! are reached through typed handles, never looked up by name.

use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyType};
use pyo3::PyTypeInfo;

use crate::error::{Attempt, Error, TlsFailure};

/// Declares each class of `socketkit/exceptions.py` once: a typed handle
/// made by `pyo3::import_exception!` (cryptography's pattern), and a
/// `Class` variant of the same name for the mapping below. The handle
/// imports its class on first use and panics if it cannot; that cannot
/// happen in an installed socketkit, because importing `socketkit._core`
/// first runs `socketkit/__init__.py`, which imports `socketkit.exceptions`.
macro_rules! socketkit_exceptions {
    ($($name:ident),* $(,)?) => {
        mod exc {
            $(pyo3::import_exception!(socketkit.exceptions, $name);)*
        }

        /// The Python class a core error becomes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Class {
            ValueError,
            MemoryError,
            /// Re-raise what the signal handler raised (KeyboardInterrupt).
            Interrupted,
            $($name,)*
        }

        impl Class {
            fn type_object(self, py: Python<'_>) -> Bound<'_, PyType> {
                match self {
                    Class::ValueError => PyValueError::type_object(py),
                    Class::MemoryError => PyMemoryError::type_object(py),
                    Class::Interrupted => PyKeyboardInterrupt::type_object(py),
                    $(Class::$name => exc::$name::type_object(py),)*
                }
            }
        }

        /// Every socketkit class, for the tests.
        #[cfg(test)]
        const SOCKETKIT: &[(Class, &str)] = &[$((Class::$name, stringify!($name)),)*];
    };
}

socketkit_exceptions!(
    Error,
    TimeoutError,
    ConnectionRefusedError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    ConnectionClosedError,
    AddressInUseError,
    ResolveError,
    LimitExceededError,
    TlsError,
    CertificateError,
    DialogueError,
);

/// The errno of a TLS failure: `ssl.SSL_ERROR_SSL`, what the stdlib's
/// `ssl.SSLError` carries for handshake and verification failures, so code
/// written for `ssl` sees the same.
const SSL_ERROR_SSL: i32 = 1;

/// The socketkit exception class for an errno.
fn class_for_errno(errno: Option<i32>) -> Class {
    match errno {
        Some(libc::ECONNREFUSED) => Class::ConnectionRefusedError,
        Some(libc::ECONNRESET) => Class::ConnectionResetError,
        Some(libc::ECONNABORTED) => Class::ConnectionAbortedError,
        Some(libc::EPIPE) => Class::BrokenPipeError,
        Some(libc::EADDRINUSE) => Class::AddressInUseError,
        Some(libc::ETIMEDOUT) => Class::TimeoutError,
        _ => Class::Error,
    }
}

/// Which class a failed multi-address connect raises: a timeout if any
/// attempt ran out of time, refused if every address refused, else the
/// first failure's class.
fn class_for_attempts(attempts: &[Attempt]) -> (Class, Option<i32>) {
    if attempts
        .iter()
        .any(|a| a.error.kind() == std::io::ErrorKind::TimedOut)
    {
        return (Class::TimeoutError, Some(libc::ETIMEDOUT));
    }
    if !attempts.is_empty()
        && attempts
            .iter()
            .all(|a| a.error.raw_os_error() == Some(libc::ECONNREFUSED))
    {
        return (Class::ConnectionRefusedError, Some(libc::ECONNREFUSED));
    }
    let errno = attempts.first().and_then(|a| a.error.raw_os_error());
    (class_for_errno(errno), errno)
}

/// The class and errno that `err` maps to.
pub fn classify(err: &Error) -> (Class, Option<i32>) {
    match err {
        Error::InvalidArgument { .. } => (Class::ValueError, None),
        Error::Io { source, .. } => {
            let errno = source.raw_os_error();
            (class_for_errno(errno), errno)
        }
        Error::Timeout { .. } => (Class::TimeoutError, Some(libc::ETIMEDOUT)),
        Error::Resolve { code, .. } => (Class::ResolveError, Some(*code)),
        Error::Connect { attempts, .. } => class_for_attempts(attempts),
        Error::Closed { .. } => (Class::ConnectionClosedError, None),
        Error::LimitExceeded { .. } => (Class::LimitExceededError, Some(libc::EMSGSIZE)),
        Error::SendAll { source, .. } => classify(source),
        Error::Unsupported { .. } => (Class::Error, Some(libc::ENOPROTOOPT)),
        Error::ClosedSocket | Error::Stopped => (Class::Error, Some(libc::EBADF)),
        Error::NotReady { .. } => (Class::TimeoutError, Some(libc::ETIMEDOUT)),
        Error::Interrupted => (Class::Interrupted, None),
        Error::Tls {
            failure: TlsFailure::Verify(_),
            ..
        } => (Class::CertificateError, Some(SSL_ERROR_SSL)),
        Error::Tls { .. } => (Class::TlsError, Some(SSL_ERROR_SSL)),
        Error::NoMemory { .. } => (Class::MemoryError, None),
        Error::Dialogue { .. } => (Class::DialogueError, None),
    }
}

fn phase_and_address(err: &Error) -> (Option<&'static str>, Option<String>) {
    match err {
        Error::Io { phase, address, .. } | Error::Timeout { phase, address } => {
            (Some(phase.as_str()), address.clone())
        }
        // A name without a port, an option name, a list of targets: no
        // (host, port) to give; `host`, `option` and `targets` say them.
        Error::Resolve { .. } => (Some("resolve"), None),
        Error::Connect { target, .. } => (Some("connect"), Some(target.clone())),
        Error::Closed { .. } | Error::LimitExceeded { .. } => (Some("recv"), None),
        Error::Tls { address, .. } => (Some("tls"), address.clone()),
        Error::SendAll { source, .. } => {
            let (_, a) = phase_and_address(source);
            (Some("send"), a)
        }
        Error::Unsupported { .. } => (Some("option"), None),
        Error::NotReady { .. } => (Some("connect"), None),
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
        Class::Interrupted => {
            return Ok(pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err(())))
        }
        Class::ValueError => return Ok(PyValueError::new_err(err.to_string())),
        Class::MemoryError => return Ok(PyMemoryError::new_err(err.to_string())),
        _ => {}
    }
    let cls = class.type_object(py);
    let message = err.to_string();
    let exc = match errno {
        Some(n) => cls.call1((n, message))?,
        None => cls.call1((message,))?,
    };
    let (phase, address) = phase_and_address(&err);
    if let Some(p) = phase {
        exc.setattr("phase", p)?;
    }
    // `address` is a (host, port) tuple, as every address socketkit
    // returns; the core keeps it as the text it printed in the message.
    if let Some(hp) = address.and_then(|a| crate::addr::parse_host_port("address", &a).ok()) {
        exc.setattr("address", (hp.host, hp.port))?;
    }
    match &err {
        Error::Connect { attempts, .. } => exc.setattr("attempts", attempts_list(py, attempts)?)?,
        Error::Closed { partial, .. } => {
            exc.setattr("partial", pyo3::types::PyBytes::new(py, partial))?
        }
        Error::SendAll { bytes_sent, .. } => exc.setattr("bytes_sent", *bytes_sent)?,
        Error::Dialogue { step, received, .. } => {
            exc.setattr("failed_step", *step)?;
            exc.setattr("received", pyo3::types::PyBytes::new(py, received))?
        }
        Error::Resolve { host, .. } => exc.setattr("host", host)?,
        Error::Unsupported { option, .. } => exc.setattr("option", *option)?,
        Error::NotReady { down, .. } => {
            let names: Vec<&str> = down.iter().map(|(t, _)| t.as_str()).collect();
            exc.setattr("targets", names)?
        }
        Error::Tls {
            failure: TlsFailure::Verify(v),
            ..
        } => {
            exc.setattr("verify_error", v.reason())?;
            // The stdlib's SSLCertVerificationError attribute, for code
            // written against `ssl`.
            exc.setattr("verify_message", v.reason())?;
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
#[path = "errors_tests.rs"]
mod tests;
