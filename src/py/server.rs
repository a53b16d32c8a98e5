//! `TcpServer` and `UdpServer`: argument conversion around `server::*`, and
//! the adapters that call Python handlers from the server's threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyConnectionError, PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString, PyTuple, PyType};

use crate::addr::HostPort;
use crate::defaults;
use crate::py::args::{self, type_name};
use crate::py::blocking::{blocking, core};
use crate::py::options::from_kwargs;
use crate::py::tcp::TcpClient;
use crate::py::threads::python_hooks;
use crate::server::tcp::bind_address;
use crate::server::{
    ConnHandler, ConnOutcome, DatagramHandler, Framing, Limits, MessageHandler, Mode, Outcome,
    StopSignal, TcpServerCore, UdpMode, UdpServerCore,
};
use crate::tcp::TcpConnection;

/// How long handlers get to finish when Ctrl-C stops `serve_forever()`:
/// short, since the user asked to get out.
const INTERRUPT_STOP_TIMEOUT: f64 = 1.0;

fn bind_target(py: Python<'_>, address: Option<&Bound<'_, PyAny>>) -> PyResult<SocketAddr> {
    let hp = match address {
        Some(a) if !a.is_none() => args::address("address", a)?,
        _ => HostPort {
            host: "127.0.0.1".into(),
            port: 0,
        },
    };
    blocking(py, |intr| bind_address(&hp, intr))
}

/// `idle_timeout`: None, or seconds more than 0.
fn idle_seconds(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let t = args::timeout("idle_timeout", obj)?;
    if t == Some(Duration::ZERO) {
        return Err(PyValueError::new_err(
            "idle_timeout must be more than 0 seconds (None: no limit), got 0",
        ));
    }
    Ok(t)
}

/// `stop()`'s timeout: seconds, or None to wait as long as handlers take.
fn stop_timeout(timeout: Option<f64>) -> PyResult<Duration> {
    match timeout {
        Some(t) => args::secs_f64("timeout", t),
        None => Ok(Duration::from_secs(86_400 * 365)),
    }
}

fn logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("logging")?
        .getattr("getLogger")?
        .call1(("socketkit",))
}

/// Log `err` with its traceback on the `socketkit` logger. Logging must
/// never take the server down, so its own failure is written out raw.
fn log_exception(py: Python<'_>, level: &str, msg: String, err: &PyErr) {
    let done = (|| -> PyResult<()> {
        let kwargs = PyDict::new(py);
        let tb = err
            .traceback(py)
            .map(|t| t.into_any())
            .unwrap_or_else(|| py.None().into_bound(py));
        kwargs.set_item("exc_info", (err.get_type(py), err.value(py), tb))?;
        logger(py)?.call_method(level, (msg,), Some(&kwargs))?;
        Ok(())
    })();
    if let Err(e) = done {
        e.write_unraisable(py, None);
    }
}

fn peer_text(peer: &SocketAddr) -> String {
    peer.to_string()
}

/// `handler(conn)` in a worker thread.
struct PyConnHandler {
    func: Py<PyAny>,
    idle_timeout: bool,
}

impl ConnHandler for PyConnHandler {
    fn handle(&self, conn: TcpConnection, peer: SocketAddr, stop: &StopSignal) -> ConnOutcome {
        // try_attach: once the interpreter is gone (a script that exited
        // with the server running), the connection just closes.
        Python::try_attach(|py| {
            let client = match Bound::new(py, TcpClient::from_connection(conn)) {
                Ok(c) => c,
                Err(e) => {
                    log_exception(
                        py,
                        "error",
                        "socketkit: cannot wrap a connection".into(),
                        &e,
                    );
                    return ConnOutcome::Failed;
                }
            };
            let r = self.func.bind(py).call1((client.clone(),));
            client.get().connection().close();
            match r {
                Ok(_) => ConnOutcome::Done,
                Err(e) => {
                    if stop.is_set() {
                        // stop() closed the connection under the handler.
                        log_exception(
                            py,
                            "debug",
                            format!("handler for {} ended by stop()", peer_text(&peer)),
                            &e,
                        );
                        ConnOutcome::Done
                    } else if e.is_instance_of::<PyConnectionError>(py) {
                        // The peer reset or closed mid-conversation: its
                        // doing, not a bug in the handler.
                        log_exception(
                            py,
                            "debug",
                            format!("connection from {} ended by the peer", peer_text(&peer)),
                            &e,
                        );
                        ConnOutcome::Done
                    } else if self.idle_timeout && e.is_instance_of::<PyTimeoutError>(py) {
                        log_exception(
                            py,
                            "debug",
                            format!("closed idle connection from {}", peer_text(&peer)),
                            &e,
                        );
                        ConnOutcome::Done
                    } else {
                        log_exception(
                            py,
                            "error",
                            format!(
                                "handler {} raised on the connection from {}",
                                func_name(self.func.bind(py)),
                                peer_text(&peer)
                            ),
                            &e,
                        );
                        ConnOutcome::Failed
                    }
                }
            }
        })
        .unwrap_or(ConnOutcome::Done)
    }
}

fn func_name(f: &Bound<'_, PyAny>) -> String {
    f.getattr("__qualname__")
        .or_else(|_| f.getattr("__name__"))
        .map(|n| n.to_string())
        .unwrap_or_else(|_| f.to_string())
}

/// The bytes of a reply, or why it is not one.
fn reply_bytes(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Outcome> {
    if v.is_none() {
        return Ok(Outcome::NoReply);
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Outcome::Reply(b.as_bytes().to_vec()));
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Ok(Outcome::Reply(b.to_vec()));
    }
    if !v.is_instance_of::<PyString>() {
        if let Ok(buf) = args::ReadBuf::get("reply", v) {
            return Ok(Outcome::Reply(buf.as_slice().to_vec()));
        }
    }
    Err(PyTypeError::new_err(format!(
        "{what} must return bytes or None, got {}",
        type_name(v)
    )))
}

/// `on_message(message) -> bytes | None` for batches of whole messages.
struct PyMessageHandler {
    func: Py<PyAny>,
}

impl MessageHandler for PyMessageHandler {
    fn handle(&self, peer: SocketAddr, msgs: &[Vec<u8>]) -> Vec<Outcome> {
        Python::try_attach(|py| {
            let f = self.func.bind(py);
            let mut outs = Vec::with_capacity(msgs.len());
            for m in msgs {
                let r = f
                    .call1((PyBytes::new(py, m),))
                    .and_then(|v| reply_bytes(&v, "on_message"));
                match r {
                    Ok(o) => outs.push(o),
                    Err(e) => {
                        log_exception(
                            py,
                            "error",
                            format!(
                                "on_message {} raised on a message from {}",
                                func_name(f),
                                peer_text(&peer)
                            ),
                            &e,
                        );
                        outs.push(Outcome::Failed);
                        break;
                    }
                }
            }
            outs
        })
        .unwrap_or_else(|| vec![Outcome::Failed])
    }
}

/// `handler(data, peer) -> bytes | None` for datagrams.
struct PyDatagramHandler {
    func: Py<PyAny>,
}

impl DatagramHandler for PyDatagramHandler {
    fn handle(&self, data: &[u8], peer: SocketAddr) -> Outcome {
        Python::try_attach(|py| {
            let f = self.func.bind(py);
            let r = f
                .call1((PyBytes::new(py, data), args::sockaddr_out(&peer)))
                .and_then(|v| reply_bytes(&v, "handler"));
            match r {
                Ok(o) => o,
                Err(e) => {
                    log_exception(
                        py,
                        "error",
                        format!(
                            "handler {} raised on a datagram from {}",
                            func_name(f),
                            peer_text(&peer)
                        ),
                        &e,
                    );
                    Outcome::Failed
                }
            }
        })
        .unwrap_or(Outcome::NoReply)
    }
}

fn stats_dict<'py>(py: Python<'py>, items: &[(&'static str, u64)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in items {
        d.set_item(*k, *v)?;
    }
    Ok(d)
}

/// Wait until stopped; on Ctrl-C (or any exception from a signal handler)
/// stop the server first, then raise.
fn serve_until_stopped(
    py: Python<'_>,
    wait: impl FnOnce(&dyn crate::wait::Interrupt) -> crate::error::Result<()> + Send,
    stop: impl FnOnce() + Send,
) -> PyResult<()> {
    match blocking(py, wait) {
        Ok(()) => Ok(()),
        Err(e) => {
            py.detach(stop);
            Err(e)
        }
    }
}

/// A TCP server.
///
/// ``TcpServer(address=("127.0.0.1", 0), handler=None, *, on_message=None,
/// framing="line", max_message=1048576, backlog=1024, max_connections=1024,
/// idle_timeout=None, **options)``
///
/// The socket is bound and listening when the constructor returns (port 0
/// picks a free port: read it from ``address``). It binds 127.0.0.1 unless
/// told otherwise: serving the network is an explicit choice
/// (``address=("0.0.0.0", 8000)``). ``reuse_address`` defaults to True.
///
/// Three ways to serve:
///
/// * no handler: a listening socket for your own loop,
///   ``conn, peer = srv.accept()`` (``conn`` is a ``TcpClient``).
/// * ``handler(conn)``: called in a worker thread per connection with a
///   ``TcpClient``; the connection closes when the handler returns.
///   With ``idle_timeout``, it is the connection's timeout: a ``recv`` that
///   waits longer raises ``TimeoutError``, which closes the connection
///   quietly. A ``ConnectionError`` escaping the handler (the peer reset or
///   closed) is logged at DEBUG level only and is not a handler error.
/// * ``on_message=fn``: Rust accepts, reads and cuts the stream into
///   messages on its own event loop (two threads);
///   ``fn(message: bytes) -> bytes | None`` runs on those threads, with the
///   GIL, and its reply (None: none) is sent back framed like the request.
///   One connection's messages are handled in order. A handler that blocks
///   delays its own connection; the other thread serves the rest (two
///   blocked at once stall the server, as in any event loop: keep long
///   work out of ``fn`` or use ``handler`` mode). ``framing``:
///
///   - ``"line"``: a message is a line without its ``\n``; a reply gets a
///     ``\n`` appended unless it ends with one.
///   - ``"length"``: a 4-byte big-endian length, then that many bytes; the
///     reply is framed the same way.
///   - ``"raw"``: whatever one read returns; the reply is sent as is.
///
///   A message over ``max_message`` bytes closes that connection.
///
/// ``TcpServer.echo()`` makes a server that echoes in Rust alone.
///
/// Limits: ``max_connections`` (a connection beyond it is closed at once
/// and counted in ``stats["rejected"]``), ``idle_timeout`` (seconds; a
/// client silent that long is closed). A handler that raises is logged with
/// its traceback on the ``socketkit`` logger and counted in
/// ``stats["handler_errors"]``; its connection closes, the server goes on.
///
/// Lifecycle: ``start()`` serves in background threads, ``serve_forever()``
/// blocks (Ctrl-C stops the server, then raises KeyboardInterrupt),
/// ``stop()`` stops from any thread, a handler included; ``with`` =
/// start/stop. A stopped server cannot start again.
#[pyclass(module = "socketkit._core", frozen)]
pub struct TcpServer {
    core: TcpServerCore,
}

impl TcpServer {
    fn make(
        py: Python<'_>,
        addr: SocketAddr,
        backlog: i32,
        limits: Limits,
        mode: Mode,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = from_kwargs("TcpServer", options)?;
        let core_srv = core(
            py,
            TcpServerCore::bind(addr, opts, backlog, limits, mode, python_hooks()),
        )?;
        Ok(TcpServer { core: core_srv })
    }
}

#[pymethods]
impl TcpServer {
    #[new]
    #[pyo3(
        signature = (address=None, handler=None, *, on_message=None, framing=None, max_message=None, backlog=None, max_connections=None, idle_timeout=None, **options),
        text_signature = "(address=('127.0.0.1', 0), handler=None, *, on_message=None, framing='line', max_message=1048576, backlog=1024, max_connections=1024, idle_timeout=None, **options)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        address: Option<&Bound<'_, PyAny>>,
        handler: Option<&Bound<'_, PyAny>>,
        on_message: Option<&Bound<'_, PyAny>>,
        framing: Option<&Bound<'_, PyAny>>,
        max_message: Option<&Bound<'_, PyAny>>,
        backlog: Option<&Bound<'_, PyAny>>,
        max_connections: Option<&Bound<'_, PyAny>>,
        idle_timeout: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let handler = args::callable("handler", handler)?;
        let on_message = args::callable("on_message", on_message)?;
        if handler.is_some() && on_message.is_some() {
            return Err(PyValueError::new_err(
                "pass either handler (called with each connection) or on_message (called with each message), not both",
            ));
        }
        let framing = match framing {
            Some(f) if !f.is_none() => {
                let s = f.cast::<PyString>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "framing must be 'line', 'length' or 'raw', got {}",
                        type_name(f)
                    ))
                })?;
                if on_message.is_none() {
                    return Err(PyValueError::new_err(
                        "framing applies only with on_message",
                    ));
                }
                core(py, Framing::parse(s.to_str()?))?
            }
            _ => Framing::Line,
        };
        let max_message = match max_message {
            Some(m) if !m.is_none() => {
                if on_message.is_none() {
                    return Err(PyValueError::new_err(
                        "max_message applies only with on_message",
                    ));
                }
                args::int_in("max_message", m, 1, u32::MAX.into())?
            }
            _ => defaults::MAX_MESSAGE,
        };
        let backlog = args::optional(backlog, |b| args::int_in("backlog", b, 0, 65535))?
            .unwrap_or(defaults::BACKLOG as i32);
        let max_connections = args::optional(max_connections, |m| {
            args::int_in("max_connections", m, 1, 1 << 30)
        })?
        .unwrap_or(defaults::MAX_CONNECTIONS);
        let idle_timeout = idle_seconds(idle_timeout)?;
        let limits = Limits {
            max_connections,
            idle_timeout,
            max_message,
        };
        let mode = match (handler, on_message) {
            (Some(func), _) => Mode::Handler(Arc::new(PyConnHandler {
                func,
                idle_timeout: idle_timeout.is_some(),
            })),
            (None, Some(func)) => Mode::Message {
                handler: Arc::new(PyMessageHandler { func }),
                framing,
            },
            (None, None) => Mode::Accept,
        };
        let addr = bind_target(py, address)?;
        Self::make(py, addr, backlog, limits, mode, options)
    }

    /// A started server that echoes every byte back, done wholly in Rust
    /// (a test peer and a benchmark baseline). Stop it with ``stop()`` or
    /// use it in a ``with`` block. Takes ``max_connections``,
    /// ``idle_timeout`` and socket options like the constructor.
    #[classmethod]
    #[pyo3(signature = (address=None, *, backlog=None, max_connections=None, idle_timeout=None, **options),
           text_signature = "($cls, address=('127.0.0.1', 0), *, backlog=1024, max_connections=1024, idle_timeout=None, **options)")]
    fn echo(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        address: Option<&Bound<'_, PyAny>>,
        backlog: Option<&Bound<'_, PyAny>>,
        max_connections: Option<&Bound<'_, PyAny>>,
        idle_timeout: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let backlog = args::optional(backlog, |b| args::int_in("backlog", b, 0, 65535))?
            .unwrap_or(defaults::BACKLOG as i32);
        let max_connections = args::optional(max_connections, |m| {
            args::int_in("max_connections", m, 1, 1 << 30)
        })?
        .unwrap_or(defaults::MAX_CONNECTIONS);
        let idle_timeout = idle_seconds(idle_timeout)?;
        let limits = Limits {
            max_connections,
            idle_timeout,
            max_message: defaults::ECHO_MAX_MESSAGE,
        };
        let addr = bind_target(py, address)?;
        let srv = Self::make(py, addr, backlog, limits, Mode::Echo, options)?;
        core(py, srv.core.start())?;
        Ok(srv)
    }

    /// Serve in background threads and return (the socket already
    /// listens, so a client may connect at once). Idempotent. Without a
    /// handler there is nothing to run: use ``accept()``.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        core(py, self.core.start())
    }

    /// Start (if needed) and block until the server stops: by ``stop()``
    /// from another thread or a handler, or by Ctrl-C, which stops the
    /// server (handlers get 1 s to finish) and then raises
    /// ``KeyboardInterrupt``.
    fn serve_forever(&self, py: Python<'_>) -> PyResult<()> {
        if matches!(self.core.mode(), Mode::Accept) {
            return Err(PyValueError::new_err(
                "serve_forever() needs handler= or on_message=; without them, call accept() in a loop",
            ));
        }
        core(py, self.core.start())?;
        let c = &self.core;
        serve_until_stopped(
            py,
            |intr| c.wait_stopped(intr),
            || c.stop(Duration::from_secs_f64(INTERRUPT_STOP_TIMEOUT)),
        )
    }

    /// Stop accepting, let running handlers finish for up to ``timeout``
    /// seconds (None: as long as they take), close every connection, and
    /// join the threads the server started. Handlers finish fast: their
    /// connections stop reading at once (``recv`` returns ``b""``, the
    /// client may be mid-request), while replies can still be sent; in
    /// ``on_message`` mode, connections with no message in a handler close
    /// at once. Safe from any thread,
    /// a handler included (its own thread ends when it returns). A call
    /// while another thread is stopping the server waits for it (up to
    /// ``timeout``); later calls do nothing. Afterwards the port refuses
    /// connections.
    #[pyo3(signature = (timeout=Some(defaults::STOP_TIMEOUT)), text_signature = "($self, timeout=5.0)")]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let t = stop_timeout(timeout)?;
        py.detach(|| self.core.stop(t));
        Ok(())
    }

    /// Wait for a connection: ``(conn, (host, port))`` with ``conn`` a
    /// ``TcpClient`` (its timeout is ``idle_timeout``; ``max_connections``
    /// does not apply: the connections are yours). For servers without a
    /// handler. ``timeout`` in seconds
    /// (None: wait forever) raises ``TimeoutError``; Ctrl-C raises
    /// KeyboardInterrupt; ``stop()`` from another thread raises
    /// ``socketkit.Error``.
    #[pyo3(signature = (timeout=None))]
    fn accept(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(TcpClient, (String, u16))> {
        if !matches!(self.core.mode(), Mode::Accept) {
            return Err(PyValueError::new_err(format!(
                "accept() is for servers without a handler; this one serves with {}",
                self.core.mode().name()
            )));
        }
        let timeout = args::timeout("timeout", timeout)?;
        let (conn, peer) = blocking(py, |intr| self.core.accept(timeout, intr))?;
        Ok((TcpClient::from_connection(conn), args::sockaddr_out(&peer)))
    }

    /// ``(host, port)`` the server is bound to (the real port when 0 was asked).
    #[getter]
    fn address(&self) -> (String, u16) {
        args::sockaddr_out(&self.core.local_addr())
    }

    /// Counters, as a new dict each time: ``accepted``, ``active``,
    /// ``rejected`` (over ``max_connections``), ``handler_errors``,
    /// ``bytes_in``, ``bytes_out``. In handler mode the bytes of a
    /// connection are counted (from the kernel's TCP_INFO) when it ends.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.core.stats().snapshot().items())
    }

    /// True while serving (after ``start()``, before ``stop()``).
    #[getter]
    fn running(&self) -> bool {
        self.core.state_name() == "running"
    }

    /// The listening socket's file descriptor, -1 once stopped.
    fn fileno(&self) -> i32 {
        self.core.fileno()
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let py = slf.py();
        core(py, slf.get().core.start())?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        let t = Duration::from_secs_f64(defaults::STOP_TIMEOUT);
        py.detach(|| self.core.stop(t));
        false
    }

    fn __repr__(&self) -> String {
        let s = self.core.stats().snapshot();
        format!(
            "<socketkit.TcpServer {} mode={} {} active={}>",
            self.core.local_addr(),
            self.core.mode().name(),
            self.core.state_name(),
            s.active
        )
    }
}

/// A UDP server: ``UdpServer(address=("127.0.0.1", 0), handler=None, **options)``.
///
/// ``handler(data: bytes, peer: (host, port)) -> bytes | None`` runs for
/// every datagram, in one thread, in arrival order; a reply (None: none)
/// goes back to the sender. Without a handler the server discards what it
/// receives (and counts it). ``UdpServer.echo()`` echoes in Rust alone. A
/// handler that raises is logged on the ``socketkit`` logger with its
/// traceback and counted; the server goes on. Same lifecycle as
/// ``TcpServer``: bound at construction, ``start()``, ``serve_forever()``,
/// ``stop(timeout=5.0)``, ``with``, ``address``, ``stats``.
#[pyclass(module = "socketkit._core", frozen)]
pub struct UdpServer {
    core: UdpServerCore,
}

impl UdpServer {
    fn make(
        py: Python<'_>,
        address: Option<&Bound<'_, PyAny>>,
        mode: UdpMode,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = from_kwargs("UdpServer", options)?;
        let addr = bind_target(py, address)?;
        let c = core(py, UdpServerCore::bind(addr, opts, mode, python_hooks()))?;
        Ok(UdpServer { core: c })
    }
}

#[pymethods]
impl UdpServer {
    #[new]
    #[pyo3(signature = (address=None, handler=None, **options),
           text_signature = "(address=('127.0.0.1', 0), handler=None, **options)")]
    fn new(
        py: Python<'_>,
        address: Option<&Bound<'_, PyAny>>,
        handler: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mode = match args::callable("handler", handler)? {
            Some(func) => UdpMode::Handler(Arc::new(PyDatagramHandler { func })),
            None => UdpMode::Discard,
        };
        Self::make(py, address, mode, options)
    }

    /// A started server that sends every datagram back to its sender, done
    /// wholly in Rust. Stop it with ``stop()`` or use it in a ``with`` block.
    #[classmethod]
    #[pyo3(signature = (address=None, **options),
           text_signature = "($cls, address=('127.0.0.1', 0), **options)")]
    fn echo(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        address: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let srv = Self::make(py, address, UdpMode::Echo, options)?;
        core(py, srv.core.start())?;
        Ok(srv)
    }

    /// Serve in a background thread and return. Idempotent.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        core(py, self.core.start())
    }

    /// Start (if needed) and block until stopped; Ctrl-C stops the server,
    /// then raises KeyboardInterrupt.
    fn serve_forever(&self, py: Python<'_>) -> PyResult<()> {
        core(py, self.core.start())?;
        let c = &self.core;
        serve_until_stopped(
            py,
            |intr| c.wait_stopped(intr),
            || c.stop(Duration::from_secs_f64(INTERRUPT_STOP_TIMEOUT)),
        )
    }

    /// Stop receiving, let a running handler finish for up to ``timeout``
    /// seconds, close the socket, join the thread. Safe from any thread,
    /// the handler included; a call while another thread is stopping
    /// waits for it.
    #[pyo3(signature = (timeout=Some(defaults::STOP_TIMEOUT)), text_signature = "($self, timeout=5.0)")]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let t = stop_timeout(timeout)?;
        py.detach(|| self.core.stop(t));
        Ok(())
    }

    /// ``(host, port)`` the server is bound to.
    #[getter]
    fn address(&self) -> (String, u16) {
        args::sockaddr_out(&self.core.local_addr())
    }

    /// Counters, as a new dict: ``datagrams_in``, ``datagrams_out``,
    /// ``handler_errors``, ``bytes_in``, ``bytes_out``.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.core.stats().snapshot().items())
    }

    /// True while serving (after ``start()``, before ``stop()``).
    #[getter]
    fn running(&self) -> bool {
        self.core.state_name() == "running"
    }

    /// The socket's file descriptor, -1 once stopped.
    fn fileno(&self) -> i32 {
        self.core.fileno()
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let py = slf.py();
        core(py, slf.get().core.start())?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        let t = Duration::from_secs_f64(defaults::STOP_TIMEOUT);
        py.detach(|| self.core.stop(t));
        false
    }

    fn __repr__(&self) -> String {
        let mode = if self.core.is_echo() { " echo" } else { "" };
        format!(
            "<socketkit.UdpServer {}{} {}>",
            self.core.local_addr(),
            mode,
            self.core.state_name()
        )
    }
}
