//! The one place that turns core errors into Python exceptions. The classes
//! live in `socketkit/exceptions.py` (they need two builtin bases each) and
//! are reached through typed handles, never looked up by name.

use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyType};
use pyo3::PyTypeInfo;

use crate::error::{Attempt, Error};

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
            /// Re-raise what the signal handler raised (KeyboardInterrupt).
            Interrupted,
            $($name,)*
        }

        impl Class {
            fn type_object(self, py: Python<'_>) -> Bound<'_, PyType> {
                match self {
                    Class::ValueError => PyValueError::type_object(py),
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
);

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
        Error::Resolve { host, .. } => exc.setattr("host", host)?,
        Error::Unsupported { option, .. } => exc.setattr("option", *option)?,
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
            (Class::ConnectionRefusedError, Some(libc::ECONNREFUSED))
        );
        let e = Error::io(
            Phase::Recv,
            None,
            io::Error::from_raw_os_error(libc::ECONNRESET),
        );
        assert_eq!(classify(&e).0, Class::ConnectionResetError);
        let e = Error::io(
            Phase::Bind,
            None,
            io::Error::from_raw_os_error(libc::EADDRINUSE),
        );
        assert_eq!(classify(&e).0, Class::AddressInUseError);
        let e = Error::io(Phase::Recv, None, io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(classify(&e), (Class::Error, Some(libc::EIO)));
    }

    #[test]
    fn timeouts_and_resolution() {
        assert_eq!(
            classify(&Error::timeout(Phase::Recv, None)).0,
            Class::TimeoutError
        );
        let e = Error::Resolve {
            host: "x".into(),
            code: -2,
            message: "Name or service not known".into(),
        };
        assert_eq!(classify(&e), (Class::ResolveError, Some(-2)));
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
        assert_eq!(classify(&e).0, Class::ConnectionRefusedError);
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
        assert_eq!(classify(&e).0, Class::TimeoutError);
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
        assert_eq!(classify(&e).0, Class::BrokenPipeError);
        assert_eq!(phase_and_address(&e).0, Some("send"));
    }

    #[test]
    fn bad_arguments_are_value_errors() {
        assert_eq!(classify(&Error::invalid("port", "x")).0, Class::ValueError);
        assert_eq!(classify(&Error::Interrupted).0, Class::Interrupted);
        assert_eq!(classify(&Error::Stopped), (Class::Error, Some(libc::EBADF)));
    }

    // The mapping with the interpreter: the exception built is an instance
    // of the right socketkit class and of the builtin old code catches,
    // with errno, phase and address set.

    use pyo3::exceptions::{
        PyBrokenPipeError, PyConnectionAbortedError, PyConnectionError, PyConnectionRefusedError,
        PyConnectionResetError, PyOSError, PyTimeoutError,
    };
    use pyo3::types::PyModule;

    /// Run `f` with `socketkit.exceptions` importable from this checkout's
    /// python/ directory. `socketkit` itself is registered as a bare package
    /// whose path is python/socketkit, so its `__init__` (which needs the
    /// built `_core`) does not run, and `cargo test` needs no installed
    /// socketkit; the import system loads exceptions.py once, whichever
    /// test thread gets there first.
    fn with_exceptions<R>(f: impl FnOnce(Python<'_>) -> R) -> R {
        Python::initialize();
        Python::attach(|py| {
            let pkg = PyModule::new(py, "socketkit").unwrap();
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/python/socketkit");
            pkg.setattr("__path__", [dir]).unwrap();
            let modules = py.import("sys").unwrap().getattr("modules").unwrap();
            modules
                .call_method1("setdefault", ("socketkit", pkg))
                .unwrap();
            py.import("socketkit.exceptions").unwrap();
            f(py)
        })
    }

    /// An error, the class and builtin it must become, its errno, phase
    /// and address.
    type Case<'py> = (
        Error,
        Class,
        Bound<'py, PyType>,
        Option<i32>,
        Option<&'static str>,
        Option<&'static str>,
    );

    /// The exception `err` becomes, as a Python object.
    fn raised<'py>(py: Python<'py>, err: Error) -> Bound<'py, PyAny> {
        to_pyerr(py, err, None)
            .into_value(py)
            .into_bound(py)
            .into_any()
    }

    fn attr<'py, T: for<'a> pyo3::FromPyObject<'a, 'py>>(obj: &Bound<'py, PyAny>, name: &str) -> T {
        obj.getattr(name)
            .unwrap()
            .extract()
            .unwrap_or_else(|_| panic!("{name} has the wrong type"))
    }

    #[test]
    fn each_declared_class_is_the_one_in_exceptions_py() {
        with_exceptions(|py| {
            let module = py.import("socketkit.exceptions").unwrap();
            let all: Vec<String> = attr(module.as_any(), "__all__");
            let mut declared: Vec<String> = SOCKETKIT.iter().map(|(_, n)| n.to_string()).collect();
            declared.sort();
            assert_eq!(declared, all, "declare every class of exceptions.py once");
            for (class, name) in SOCKETKIT {
                let from_python = module.getattr(*name).unwrap();
                assert!(class.type_object(py).is(&from_python), "{name}");
                assert!(class.type_object(py).is_subclass_of::<PyOSError>().unwrap());
            }
        });
    }

    #[test]
    fn built_exceptions_have_class_builtin_errno_phase_address() {
        let at: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let io_at = |phase, errno| Error::io(phase, Some(&at), io::Error::from_raw_os_error(errno));
        with_exceptions(|py| {
            let gaierror = py.import("socket").unwrap().getattr("gaierror").unwrap();
            let cases: Vec<Case<'_>> = vec![
                (
                    io_at(Phase::Connect, libc::ECONNREFUSED),
                    Class::ConnectionRefusedError,
                    PyConnectionRefusedError::type_object(py),
                    Some(libc::ECONNREFUSED),
                    Some("connect"),
                    Some("127.0.0.1:9"),
                ),
                (
                    io_at(Phase::Recv, libc::ECONNRESET),
                    Class::ConnectionResetError,
                    PyConnectionResetError::type_object(py),
                    Some(libc::ECONNRESET),
                    Some("recv"),
                    Some("127.0.0.1:9"),
                ),
                (
                    Error::io(
                        Phase::Accept,
                        None,
                        io::Error::from_raw_os_error(libc::ECONNABORTED),
                    ),
                    Class::ConnectionAbortedError,
                    PyConnectionAbortedError::type_object(py),
                    Some(libc::ECONNABORTED),
                    Some("accept"),
                    None,
                ),
                (
                    io_at(Phase::Send, libc::EPIPE),
                    Class::BrokenPipeError,
                    PyBrokenPipeError::type_object(py),
                    Some(libc::EPIPE),
                    Some("send"),
                    Some("127.0.0.1:9"),
                ),
                (
                    io_at(Phase::Bind, libc::EADDRINUSE),
                    Class::AddressInUseError,
                    PyOSError::type_object(py),
                    Some(libc::EADDRINUSE),
                    Some("bind"),
                    Some("127.0.0.1:9"),
                ),
                (
                    Error::timeout(Phase::Connect, Some("example.net:80".into())),
                    Class::TimeoutError,
                    PyTimeoutError::type_object(py),
                    Some(libc::ETIMEDOUT),
                    Some("connect"),
                    Some("example.net:80"),
                ),
                (
                    Error::Resolve {
                        host: "nosuch.invalid".into(),
                        code: -2,
                        message: "Name or service not known".into(),
                    },
                    Class::ResolveError,
                    gaierror.cast_into().unwrap(),
                    Some(-2),
                    Some("resolve"),
                    None,
                ),
                (
                    Error::Closed {
                        partial: b"ab".to_vec(),
                        expected: "5".into(),
                    },
                    Class::ConnectionClosedError,
                    PyConnectionError::type_object(py),
                    None,
                    Some("recv"),
                    None,
                ),
                (
                    Error::LimitExceeded {
                        what: "line",
                        limit: 8,
                    },
                    Class::LimitExceededError,
                    PyOSError::type_object(py),
                    Some(libc::EMSGSIZE),
                    Some("recv"),
                    None,
                ),
                (
                    Error::Unsupported {
                        option: "only_v6",
                        reason: "applies only to IPv6 sockets".into(),
                    },
                    Class::Error,
                    PyOSError::type_object(py),
                    Some(libc::ENOPROTOOPT),
                    Some("option"),
                    None,
                ),
            ];
            let base = Class::Error.type_object(py);
            for (err, class, builtin, errno, phase, address) in cases {
                let text = err.to_string();
                let e = raised(py, err);
                assert!(
                    e.is_instance(&class.type_object(py)).unwrap(),
                    "{text}: {e}"
                );
                assert!(e.is_instance(&builtin).unwrap(), "{text}: not a {builtin}");
                assert!(
                    e.is_instance(&base).unwrap(),
                    "{text}: not a socketkit.Error"
                );
                assert_eq!(attr::<Option<i32>>(&e, "errno"), errno, "{text}");
                assert_eq!(
                    attr::<Option<String>>(&e, "phase").as_deref(),
                    phase,
                    "{text}"
                );
                // (host, port), shown as "host:port" to compare.
                let shown = attr::<Option<(String, u16)>>(&e, "address")
                    .map(|(h, p)| crate::addr::HostPort::new(h, p).to_string());
                assert_eq!(shown.as_deref(), address, "{text}");
                assert!(e.str().unwrap().to_string().contains(&text), "{text}: {e}");
            }
        });
    }

    #[test]
    fn extra_attributes_are_set() {
        with_exceptions(|py| {
            let e = raised(
                py,
                Error::Connect {
                    target: "localhost:1".into(),
                    attempts: vec![
                        Attempt {
                            address: "[::1]:1".parse().unwrap(),
                            error: io::Error::from_raw_os_error(libc::ECONNREFUSED),
                        },
                        Attempt {
                            address: "127.0.0.1:1".parse().unwrap(),
                            error: io::Error::from_raw_os_error(libc::ECONNREFUSED),
                        },
                    ],
                },
            );
            assert!(e
                .is_instance(&Class::ConnectionRefusedError.type_object(py))
                .unwrap());
            assert_eq!(
                attr::<(String, u16)>(&e, "address"),
                ("localhost".to_string(), 1)
            );
            let attempts: Vec<((String, u16), Option<i32>, String)> = attr(&e, "attempts");
            assert_eq!(attempts.len(), 2);
            assert_eq!(attempts[1].0, ("127.0.0.1".to_string(), 1));
            assert_eq!(attempts[1].1, Some(libc::ECONNREFUSED));

            let e = raised(
                py,
                Error::SendAll {
                    bytes_sent: 5,
                    source: Box::new(Error::io(
                        Phase::Send,
                        None,
                        io::Error::from_raw_os_error(libc::EPIPE),
                    )),
                },
            );
            assert!(e.is_instance(&PyBrokenPipeError::type_object(py)).unwrap());
            assert_eq!(attr::<usize>(&e, "bytes_sent"), 5);
            assert_eq!(attr::<String>(&e, "phase"), "send");

            let e = raised(
                py,
                Error::Closed {
                    partial: b"ab".to_vec(),
                    expected: "5".into(),
                },
            );
            assert_eq!(attr::<Vec<u8>>(&e, "partial"), b"ab");

            let e = raised(
                py,
                Error::NotReady {
                    waited: 1.0,
                    down: vec![("db:5432".into(), "refused".into())],
                },
            );
            assert!(e.is_instance(&PyTimeoutError::type_object(py)).unwrap());
            assert_eq!(attr::<Vec<String>>(&e, "targets"), ["db:5432"]);
        });
    }

    #[test]
    fn value_errors_and_interrupts() {
        with_exceptions(|py| {
            let e = raised(py, Error::invalid("port", "must be 0-65535, got 70000"));
            assert!(e.is_exact_instance_of::<PyValueError>());
            assert!(e.str().unwrap().to_string().contains("port"));
            let e = raised(py, Error::Interrupted);
            assert!(e.is_instance_of::<PyKeyboardInterrupt>());
            // What a signal handler raised is re-raised as it is.
            let pending = PyValueError::new_err("from the handler");
            let e = to_pyerr(py, Error::Interrupted, Some(pending)).into_value(py);
            assert!(e.bind(py).is_instance_of::<PyValueError>());
        });
    }
}
