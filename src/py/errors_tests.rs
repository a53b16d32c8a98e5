//! The error mapping of `errors.rs`, tested: the class each core error
//! picks, and the exceptions built with the interpreter.

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
    assert_eq!(
        classify(&Error::NoMemory { bytes: 1 }),
        (Class::MemoryError, None)
    );
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
/// socketkit. The first import runs in one thread while the others wait
/// without the GIL.
fn with_exceptions<R>(f: impl FnOnce(Python<'_>) -> R) -> R {
    static IMPORTED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    IMPORTED.get_or_init(|| {
        embed_interpreter();
        Python::attach(|py| {
            let pkg = PyModule::new(py, "socketkit").unwrap();
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/python/socketkit");
            pkg.setattr("__path__", [dir]).unwrap();
            let modules = py.import("sys").unwrap().getattr("modules").unwrap();
            modules
                .call_method1("setdefault", ("socketkit", pkg))
                .unwrap();
            py.import("socketkit.exceptions").unwrap();
        })
    });
    Python::attach(|py| {
        py.import("socketkit.exceptions").unwrap();
        f(py)
    })
}

/// Start the interpreter with the standard library of the libpython this
/// binary links. Left alone, an embedded interpreter finds its prefix
/// through `python3` on PATH: with a virtualenv activated, that venv's
/// home, possibly another build of the same version (a pyenv 3.11.7 venv
/// over the system's 3.11.2 libpython) whose C extension modules do not
/// load into it (exceptions.py imports `ssl`: "_ssl...: undefined symbol").
/// Naming this test binary as the program makes getpath ignore PATH and
/// fall back to the libpython's own prefix.
fn embed_interpreter() {
    if let Ok(exe) = std::env::current_exe() {
        let wide: Vec<libc::wchar_t> = exe
            .to_string_lossy()
            .chars()
            .map(|c| c as libc::wchar_t)
            .chain(std::iter::once(0))
            .collect();
        // Python keeps the pointer: the name must live as long as the process.
        let name: &'static [libc::wchar_t] = Box::leak(wide.into_boxed_slice());
        // SAFETY: called once, before the interpreter is initialized (the
        // only initialization in this test binary is below), with a
        // NUL-terminated wide string that is never freed.
        #[allow(deprecated)]
        unsafe {
            pyo3::ffi::Py_SetProgramName(name.as_ptr())
        };
    }
    Python::initialize();
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
fn a_failed_dialogue_step_is_a_dialogue_error() {
    with_exceptions(|py| {
        let e = raised(
            py,
            Error::Dialogue {
                step: 2,
                received: b"-ERR".to_vec(),
                reason: "expected b\"+PONG\", the peer closed".into(),
            },
        );
        assert!(e
            .is_instance(&Class::DialogueError.type_object(py))
            .unwrap());
        assert!(e.is_instance(&Class::Error.type_object(py)).unwrap());
        assert_eq!(attr::<usize>(&e, "failed_step"), 2);
        assert_eq!(attr::<Vec<u8>>(&e, "received"), b"-ERR");
        assert!(e.str().unwrap().to_string().contains("step 2 failed"));
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

#[test]
fn tls_failures_pick_tls_classes() {
    use crate::error::{TlsFailure, VerifyFailure};
    let verify = Error::tls(None, TlsFailure::Verify(VerifyFailure::Expired));
    assert_eq!(classify(&verify), (Class::CertificateError, Some(1)));
    let alert = Error::tls(None, TlsFailure::Alert("handshake failure".into()));
    assert_eq!(classify(&alert), (Class::TlsError, Some(1)));
    assert_eq!(phase_and_address(&alert).0, Some("tls"));
    // A handshake that ran out of time is a timeout, in the tls phase.
    let t = Error::timeout(Phase::Tls, None);
    assert_eq!(classify(&t).0, Class::TimeoutError);
    assert_eq!(phase_and_address(&t).0, Some("tls"));
}

#[test]
fn tls_exceptions_are_ssl_errors_too() {
    use crate::error::{TlsFailure, VerifyFailure};
    let at: std::net::SocketAddr = "127.0.0.1:443".parse().unwrap();
    with_exceptions(|py| {
        let ssl = py.import("ssl").unwrap();
        let ssl_error = ssl.getattr("SSLError").unwrap();
        let verify_error = ssl.getattr("SSLCertVerificationError").unwrap();
        let base = Class::Error.type_object(py);

        let e = raised(
            py,
            Error::tls(
                Some(&at),
                TlsFailure::Verify(VerifyFailure::HostnameMismatch),
            ),
        );
        assert!(e
            .is_instance(&Class::CertificateError.type_object(py))
            .unwrap());
        assert!(e.is_instance(&Class::TlsError.type_object(py)).unwrap());
        assert!(e.is_instance(&verify_error).unwrap());
        assert!(e.is_instance(&ssl_error).unwrap());
        assert!(e.is_instance(&base).unwrap());
        assert_eq!(attr::<String>(&e, "verify_error"), "hostname mismatch");
        assert_eq!(attr::<String>(&e, "verify_message"), "hostname mismatch");
        assert_eq!(attr::<String>(&e, "phase"), "tls");
        assert_eq!(
            attr::<(String, u16)>(&e, "address"),
            ("127.0.0.1".to_string(), 443)
        );
        assert_eq!(attr::<Option<i32>>(&e, "errno"), Some(1));
        assert_eq!(
            e.str().unwrap().to_string(),
            "certificate verify failed: hostname mismatch (tls 127.0.0.1:443)"
        );

        let e = raised(
            py,
            Error::tls(None, TlsFailure::Alert("handshake failure".into())),
        );
        assert!(e.is_instance(&Class::TlsError.type_object(py)).unwrap());
        assert!(!e
            .is_instance(&Class::CertificateError.type_object(py))
            .unwrap());
        assert!(e.is_instance(&ssl_error).unwrap());
        assert_eq!(attr::<Option<String>>(&e, "verify_error"), None);
        assert_eq!(attr::<String>(&e, "phase"), "tls");
    });
}
