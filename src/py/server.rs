//! `TcpServer` and `UdpServer`: argument conversion around `server::*`.
//! Their shared lifecycle (start, serve_forever, stop, with, address,
//! stats) is written once, in `server_methods!`, against the core's
//! `server::Server` trait; the handler adapters live in `handlers.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use crate::addr::HostPort;
use crate::defaults;
use crate::py::args::{self, type_name};
use crate::py::blocking::{blocking, core};
use crate::py::handlers::{PyConnHandler, PyDatagramHandler, PyMessageHandler};
use crate::py::options::from_kwargs;
use crate::py::tcp::TcpClient;
use crate::py::threads::python_hooks;
use crate::py::tls::tls_arg;
use crate::server::tcp::bind_address;
use crate::server::{Framing, Limits, Mode, Server, TcpServerCore, UdpMode, UdpServerCore};
use crate::tls::ServerTls;

/// How long handlers get to finish when Ctrl-C stops `serve_forever()`:
/// short, since the user asked to get out.
const INTERRUPT_STOP_TIMEOUT: Duration = Duration::from_secs(1);

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

/// `backlog`, `max_connections` and `idle_timeout` of a TCP server.
fn listen_limits(
    backlog: Option<&Bound<'_, PyAny>>,
    max_connections: Option<&Bound<'_, PyAny>>,
    idle_timeout: Option<&Bound<'_, PyAny>>,
    max_message: usize,
    max_unsent: usize,
) -> PyResult<(i32, Limits)> {
    let backlog = args::optional(backlog, |b| args::int_in("backlog", b, 0, 65535))?
        .unwrap_or(defaults::BACKLOG as i32);
    let max_connections = args::optional(max_connections, |m| {
        args::int_in("max_connections", m, 1, 1 << 30)
    })?
    .unwrap_or(defaults::MAX_CONNECTIONS);
    let limits = Limits {
        max_connections,
        idle_timeout: idle_seconds(idle_timeout)?,
        max_message,
        max_unsent,
    };
    Ok((backlog, limits))
}

/// `stop()`'s timeout: seconds, or None to wait as long as handlers take.
fn stop_timeout(timeout: Option<f64>) -> PyResult<Duration> {
    match timeout {
        Some(t) => args::secs_f64("timeout", t),
        None => Ok(Duration::from_secs(86_400 * 365)),
    }
}

/// The methods both server classes share, written once against
/// `server::Server`. pyo3 takes one `#[pymethods]` block per class (short of
/// its `multiple-pymethods` feature and the `inventory` crate), so the
/// macro emits that block with the class's own methods inside it.
macro_rules! server_methods {
    ($cls:ident { $($own:tt)* }) => {
        #[pymethods]
        impl $cls {
            $($own)*

            /// Serve in background threads and return (the socket already
            /// listens, so a client may connect at once). Idempotent.
            fn start(&self, py: Python<'_>) -> PyResult<()> {
                core(py, self.core.start())
            }

            /// Start (if needed) and block until the server stops: by
            /// ``stop()`` from another thread or a handler, or by Ctrl-C,
            /// which stops the server (handlers get 1 s to finish) and then
            /// raises ``KeyboardInterrupt``.
            fn serve_forever(&self, py: Python<'_>) -> PyResult<()> {
                core(py, self.core.can_serve())?;
                core(py, self.core.start())?;
                let c = &self.core;
                blocking(py, |intr| c.wait_stopped(intr)).inspect_err(|_| {
                    py.detach(|| c.stop(INTERRUPT_STOP_TIMEOUT));
                })
            }

            /// Stop serving, let running handlers finish for up to
            /// ``timeout`` seconds (None: as long as they take), close every
            /// socket, and join the threads the server started. Handlers
            /// finish fast: their connections stop reading at once (``recv``
            /// returns ``b""``, the client may be mid-request), while
            /// replies can still be sent; in ``on_message`` mode,
            /// connections with no message in a handler close at once. A
            /// handler still running at the deadline is left to return on
            /// its own, but its connection (or a UDP server's socket) is
            /// closed first: its late reply is never sent. Safe from any
            /// thread, a handler included (its own thread ends when it
            /// returns, and its reply is sent). A call while another thread
            /// is stopping the server waits for it (up to ``timeout``);
            /// later calls do nothing. Afterwards the port is closed.
            #[pyo3(signature = (timeout=Some(defaults::STOP_TIMEOUT)), text_signature = "($self, timeout=5.0)")]
            fn stop(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
                let t = stop_timeout(timeout)?;
                py.detach(|| self.core.stop(t));
                Ok(())
            }

            /// ``(host, port)`` the server is bound to (the real port when 0
            /// was asked).
            #[getter]
            fn address(&self) -> (String, u16) {
                args::sockaddr_out(&self.core.local_addr())
            }

            /// Counters, as a new dict each time (the class docstring says
            /// what each one counts).
            #[getter]
            fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let d = PyDict::new(py);
                for (k, v) in self.core.stats_items() {
                    d.set_item(k, v)?;
                }
                Ok(d)
            }

            /// True while serving (after ``start()``, before ``stop()``).
            #[getter]
            fn running(&self) -> bool {
                self.core.state_name() == "running"
            }

            /// The server socket's file descriptor, -1 once stopped.
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
        }
    };
}

/// A TCP server.
///
/// ``TcpServer(address=("127.0.0.1", 0), handler=None, *, on_message=None,
/// framing="line", max_message=1048576, max_unsent=65536, backlog=1024,
/// max_connections=1024, idle_timeout=None, tls=None, **options)``
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
///     ``\n`` appended unless it ends with one. When the client closes its
///     side, bytes after its last ``\n`` are a last message (as asyncio's
///     ``readline()`` and handler mode's ``conn.lines()`` return them); its
///     reply is sent before the connection closes.
///   - ``"length"``: a 4-byte big-endian length, then that many bytes; the
///     reply is framed the same way.
///   - ``"raw"``: whatever one read returns; the reply is sent as is.
///
///   A message over ``max_message`` bytes closes that connection.
///   ``max_unsent`` (bytes, default 64 KiB) bounds the replies a connection
///   may have waiting to be sent: past it the server stops reading from
///   that connection, and stops calling ``fn`` for it, until the client
///   reads (asyncio's write-buffer high-water mark, applied for you), so a
///   client that sends and never reads costs at most ``max_unsent``, one
///   reply and one read, however much it sends.
///
/// ``TcpServer.echo()`` makes a server that echoes in Rust alone (a
/// thread per connection blocked in ``read``, as a std::net echo, for the
/// first 64 at once, the event loop for those past them; with ``tls``, the
/// event loop).
///
/// Limits: ``max_connections`` (a connection beyond it is closed at once
/// and counted in ``stats["rejected"]``), ``idle_timeout`` (seconds; a
/// client silent that long is closed, and so is one that takes none of its
/// replies for that long, as a handler's ``sendall`` would time out),
/// ``max_message`` and ``max_unsent`` (above). A handler that raises is
/// logged with its traceback on the ``socketkit`` logger and counted in
/// ``stats["handler_errors"]``; its connection closes, the server goes on.
///
/// TLS: ``tls=TlsConfig(cert_file=..., key_file=..., client_ca_file=None)``
/// serves TLS in every mode (``cert_file``: the certificate chain, leaf
/// first; ``key_file``: its key, unless it is in ``cert_file``;
/// ``client_ca_file``: require client certificates signed by a CA in it;
/// ``min_version``, ``max_version`` and ``alpn`` apply too). Each
/// connection's handshake runs before it is served, off the accept path
/// (in its worker thread, on the event loop, or in a background thread for
/// ``accept()``), within ``idle_timeout``, or 10 s without one: a client
/// that never speaks TLS costs only its own connection. A failed handshake (a
/// plaintext client, a missing or unknown client certificate, a timeout)
/// closes that connection, is counted in ``stats["tls_failures"]`` and
/// logged at DEBUG level only; a client that connects and leaves without
/// sending a byte (a port check) is not a failure. Handlers get a ``TcpClient`` speaking TLS;
/// ``on_message`` and ``echo`` see decrypted bytes.
///
/// ``stats`` counts ``accepted``, ``active``, ``rejected`` (over
/// ``max_connections``), ``handler_errors``, ``bytes_in`` and ``bytes_out``,
/// and with ``tls`` also ``tls_failures``; in handler mode a connection's
/// bytes are counted (from the kernel's TCP_INFO, so with TLS they include
/// its records' overhead) when it ends; the other modes count application
/// bytes.
///
/// Lifecycle: ``start()`` serves in background threads, ``serve_forever()``
/// blocks (Ctrl-C stops the server, then raises KeyboardInterrupt),
/// ``stop()`` stops from any thread, a handler included; ``with`` =
/// start/stop. A stopped server cannot start again.
#[pyclass(module = "socketkit._core", frozen)]
pub struct TcpServer {
    core: TcpServerCore,
}

/// `tls=` of a server: None/False, or a `TlsConfig` with a certificate
/// (`True` has none: the error says so). Client-only settings are
/// refused rather than ignored: `ca_file` on a server would read as
/// "check clients against this CA", which is `client_ca_file`.
fn server_tls(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Arc<ServerTls>>> {
    let Some(cfg) = tls_arg(obj)? else {
        return Ok(None);
    };
    if cfg.ca_file.is_some() {
        return Err(PyValueError::new_err(
            "tls: ca_file is for clients; a server checks client certificates against client_ca_file",
        ));
    }
    if cfg.server_hostname.is_some() {
        return Err(PyValueError::new_err(
            "tls: server_hostname is for clients; a server presents the names in cert_file",
        ));
    }
    let tls = py.detach(|| ServerTls::new(&cfg));
    Ok(Some(Arc::new(core(py, tls)?)))
}

impl TcpServer {
    #[allow(clippy::too_many_arguments)]
    fn make(
        py: Python<'_>,
        addr: SocketAddr,
        backlog: i32,
        limits: Limits,
        mode: Mode,
        tls: Option<Arc<ServerTls>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = from_kwargs("TcpServer", options)?;
        let core_srv = core(
            py,
            TcpServerCore::bind(addr, opts, backlog, limits, mode, python_hooks(), tls),
        )?;
        Ok(TcpServer { core: core_srv })
    }
}

server_methods!(TcpServer {
    #[new]
    #[pyo3(
        signature = (address=None, handler=None, *, on_message=None, framing=None, max_message=None, max_unsent=None, backlog=None, max_connections=None, idle_timeout=None, tls=None, **options),
        text_signature = "(address=('127.0.0.1', 0), handler=None, *, on_message=None, framing='line', max_message=1048576, max_unsent=65536, backlog=1024, max_connections=1024, idle_timeout=None, tls=None, **options)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        address: Option<&Bound<'_, PyAny>>,
        handler: Option<&Bound<'_, PyAny>>,
        on_message: Option<&Bound<'_, PyAny>>,
        framing: Option<&Bound<'_, PyAny>>,
        max_message: Option<&Bound<'_, PyAny>>,
        max_unsent: Option<&Bound<'_, PyAny>>,
        backlog: Option<&Bound<'_, PyAny>>,
        max_connections: Option<&Bound<'_, PyAny>>,
        idle_timeout: Option<&Bound<'_, PyAny>>,
        tls: Option<&Bound<'_, PyAny>>,
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
        let max_unsent = match max_unsent {
            Some(m) if !m.is_none() => {
                if on_message.is_none() {
                    return Err(PyValueError::new_err(
                        "max_unsent applies only with on_message",
                    ));
                }
                args::int_in("max_unsent", m, 1, 1 << 40)?
            }
            _ => defaults::MAX_UNSENT,
        };
        let (backlog, limits) = listen_limits(
            backlog,
            max_connections,
            idle_timeout,
            max_message,
            max_unsent,
        )?;
        let idle_timeout = limits.idle_timeout;
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
        let tls = server_tls(py, tls)?;
        let addr = bind_target(py, address)?;
        Self::make(py, addr, backlog, limits, mode, tls, options)
    }

    /// A started server that echoes every byte back, done wholly in Rust
    /// (a test peer and a benchmark baseline). Stop it with ``stop()`` or
    /// use it in a ``with`` block. Takes ``max_connections``,
    /// ``idle_timeout``, ``tls`` (it then echoes the decrypted bytes) and
    /// socket options like the constructor.
    #[classmethod]
    #[pyo3(signature = (address=None, *, backlog=None, max_connections=None, idle_timeout=None, tls=None, **options),
           text_signature = "($cls, address=('127.0.0.1', 0), *, backlog=1024, max_connections=1024, idle_timeout=None, tls=None, **options)")]
    #[allow(clippy::too_many_arguments)]
    fn echo(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        address: Option<&Bound<'_, PyAny>>,
        backlog: Option<&Bound<'_, PyAny>>,
        max_connections: Option<&Bound<'_, PyAny>>,
        idle_timeout: Option<&Bound<'_, PyAny>>,
        tls: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let (backlog, limits) = listen_limits(
            backlog,
            max_connections,
            idle_timeout,
            defaults::ECHO_MAX_MESSAGE,
            defaults::MAX_UNSENT,
        )?;
        let tls = server_tls(py, tls)?;
        let addr = bind_target(py, address)?;
        let srv = Self::make(py, addr, backlog, limits, Mode::Echo, tls, options)?;
        core(py, srv.core.start())?;
        Ok(srv)
    }

    /// Wait for a connection: ``(conn, (host, port))`` with ``conn`` a
    /// ``TcpClient`` (its timeout is ``idle_timeout``; ``max_connections``
    /// does not apply: the connections are yours). For servers without a
    /// handler. ``timeout`` in seconds
    /// (None: wait forever) raises ``TimeoutError``; Ctrl-C raises
    /// KeyboardInterrupt; ``stop()`` from another thread raises
    /// ``socketkit.Error``.
    ///
    /// With ``tls``, ``conn`` has finished its handshake (``conn.tls_info()``
    /// says what was agreed). Handshakes run in background threads, up to
    /// ``max_connections`` at once, so a client that never speaks TLS does
    /// not hold up the next one; a handshake that fails (a plaintext client,
    /// no client certificate) makes ``accept()`` raise its
    /// ``socketkit.Error``, as ``ssl.SSLSocket.accept()`` raises its
    /// ``SSLError``: catch it and call ``accept()`` again.
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

    fn __repr__(&self) -> String {
        let s = self.core.stats().snapshot();
        format!(
            "<socketkit.TcpServer {} mode={}{} {} active={}>",
            self.core.local_addr(),
            self.core.mode().name(),
            if self.core.is_tls() { " tls" } else { "" },
            self.core.state_name(),
            s.active
        )
    }
});

/// A UDP server: ``UdpServer(address=("127.0.0.1", 0), handler=None, **options)``.
///
/// ``handler(data: bytes, peer: (host, port)) -> bytes | None`` runs for
/// every datagram, in one thread, in arrival order; a reply (None: none)
/// goes back to the sender. Without a handler the server discards what it
/// receives (and counts it). ``UdpServer.echo()`` echoes in Rust alone. A
/// handler that raises is logged on the ``socketkit`` logger with its
/// traceback and counted; the server goes on. A reply the socket refuses
/// because of its size (over 65,507 bytes over IPv4, 65,527 over IPv6) is
/// not sent: it is logged at ERROR level and counted in
/// ``stats["handler_errors"]`` too. Same lifecycle as
/// ``TcpServer``: bound at construction, ``start()``, ``serve_forever()``,
/// ``stop(timeout=5.0)``, ``with``, ``address``, ``stats``. ``stats``
/// counts ``datagrams_in``, ``datagrams_out``, ``handler_errors``,
/// ``bytes_in`` and ``bytes_out``.
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

server_methods!(UdpServer {
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

    fn __repr__(&self) -> String {
        let mode = if self.core.is_echo() { " echo" } else { "" };
        format!(
            "<socketkit.UdpServer {}{} {}>",
            self.core.local_addr(),
            mode,
            self.core.state_name()
        )
    }
});
