//! `socketkit.aio.AsyncTcpClient`: argument and result conversion around
//! `aio::tcp::AsyncConn`; every method returns an awaitable of the running
//! loop (`py/aio.rs`).

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyTuple, PyType};

use crate::aio::connect::connect_family;
use crate::aio::tcp::AsyncConn;
use crate::defaults;
use crate::py::aio::{ctx, ready_on, Ctx, Owner, Value};
use crate::py::aio_reader::{Kind, OwnedWant, Reader};
use crate::py::aio_tls;
use crate::py::args::{self, Int, ReadBuf, WriteBuf};
use crate::py::blocking::core;
use crate::py::errors::to_pyerr;
use crate::py::options::{from_kwargs, to_dict};
use crate::py::probe_args::family_arg;
use crate::py::tcp_info::tcp_info_dict;
use crate::py::tls::{client_tls_arg, info_to_py};
use crate::sock::parse_shutdown;
use crate::tcp::Reply;
use crate::wait::Deadline;

const WHAT: &str = "AsyncTcpClient";

/// A connected TCP client for asyncio (and uvloop): ``TcpClient``'s
/// methods as awaitables, with no Python thread per call (reads on the
/// event loop's thread, connects and waiting writes on socketkit's own
/// runtime).
///
/// Make one with ``await AsyncTcpClient.connect(address, *, timeout=None,
/// source_address=None, tls=None, family=None, **options)``: the same
/// address forms, Happy Eyeballs under one deadline, TLS and socket
/// options as ``TcpClient``. ``timeout`` (seconds) bounds the connect (and
/// handshake) and then every later call, as ``settimeout``;
/// ``asyncio.timeout()`` works around any call as well. ``start_tls``,
/// ``run_steps``, ``tls_info``, ``tcp_info``, ``from_socket`` and
/// ``detach`` are ``TcpClient``'s; cancelling a ``start_tls`` or
/// ``run_steps`` closes the client.
///
/// Cancellation: a cancelled (or timed-out) read leaves the client usable;
/// bytes it had already received stay buffered for the next read. A
/// cancelled ``send``/``sendall``/``request`` may have sent part of its
/// data: the client stays open, but the exchange is cut short.
///
/// The client belongs to the event loop it was connected in; using it from
/// another loop raises RuntimeError.
#[pyclass(module = "socketkit._aio_core", frozen)]
pub struct AsyncTcpClient {
    conn: Arc<AsyncConn>,
    reader: Arc<Reader>,
    owner: Owner,
    /// The host connected to: the TLS name (SNI, verification) for
    /// `start_tls`. An IP address when there was no name.
    host: String,
}

impl Drop for AsyncTcpClient {
    fn drop(&mut self) {
        if !self.conn.is_open() {
            return;
        }
        let msg = format!("unclosed {}", self.repr());
        Python::attach(|py| {
            self.reader.close(py);
            let category = py.get_type::<pyo3::exceptions::PyResourceWarning>();
            let Ok(text) = std::ffi::CString::new(msg) else {
                return;
            };
            if let Err(e) = PyErr::warn(py, &category, &text, 1) {
                e.write_unraisable(py, None);
            }
        });
        self.conn.close();
    }
}

impl AsyncTcpClient {
    fn ctx<'py>(&self, py: Python<'py>) -> PyResult<Ctx<'py>> {
        self.owner.ctx(py, WHAT)
    }

    fn repr(&self) -> String {
        let t = match self.conn.timeout() {
            Some(d) => format!("{}", d.as_secs_f64()),
            None => "None".into(),
        };
        let state = if self.conn.is_open() {
            "open"
        } else {
            "closed"
        };
        let tls = match self.conn.tls_info() {
            Some(i) => format!(" tls={}", i.version),
            None if self.conn.is_tls() => " tls".into(),
            None => String::new(),
        };
        format!(
            "<socketkit.aio.AsyncTcpClient {} -> {} {state}{tls} fd={} timeout={t}>",
            self.conn.local_addr(),
            self.conn.peer_addr(),
            self.conn.fileno()
        )
    }

    /// A read, on the loop's thread (`py/aio_reader.rs`).
    fn read<'py>(
        &self,
        py: Python<'py>,
        want: OwnedWant,
        kind: Kind,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.owner.check(py, WHAT)?;
        self.reader.read(py, want, kind)
    }

    fn shut(&self, py: Python<'_>) {
        self.reader.close(py);
        self.conn.close();
    }

    /// Send `data` after `sent` bytes went out on the fast path; the
    /// awaitable gives `count` (None: None).
    fn write_rest<'py>(
        &self,
        c: &Ctx<'py>,
        data: Vec<u8>,
        sent: usize,
        count: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let guard = self.conn.pending(true);
        let turn = self.conn.write_turn();
        let conn = self.conn.clone();
        c.spawn(async move {
            let r = conn.send_all(&data, sent, turn).await;
            drop(guard);
            r.map(|()| count.map_or(Value::None, Value::Int))
        })
    }

    /// The fast path of `sendall`: how much the kernel (under TLS, the
    /// session) took at once, and whether all of it is out.
    fn send_now(&self, py: Python<'_>, data: &[u8]) -> PyResult<(usize, bool)> {
        match self.conn.try_send_now(data) {
            Some(r) => core(py, r),
            None => Ok((0, true)),
        }
    }
}

fn reply_of<'a>(
    until: Option<&Bound<'_, PyAny>>,
    exact: Option<&Bound<'_, PyAny>>,
    max_size: usize,
    delim: &'a mut Vec<u8>,
) -> PyResult<Reply<'a>> {
    let until = until.filter(|u| !u.is_none());
    let exact = exact.filter(|e| !e.is_none());
    Ok(match (until, exact) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "request: give until= or exact=, not both",
            ))
        }
        (None, Some(n)) => Reply::Exact(args::size("exact", n)?),
        (Some(u), None) => {
            *delim = args::delimiter("until", u)?;
            Reply::Until(delim, max_size)
        }
        (None, None) => {
            *delim = b"\n".to_vec();
            Reply::Until(delim, max_size)
        }
    })
}

#[pymethods]
impl AsyncTcpClient {
    /// ``await AsyncTcpClient.connect(address, *, timeout=None,
    /// source_address=None, tls=None, family=None, **options)``: the
    /// arguments of ``TcpClient``. ``tls`` (``True`` or a
    /// ``socketkit.TlsConfig``) runs the handshake inside the same
    /// deadline; a cancelled connect closes its socket, handshake or not.
    #[classmethod]
    #[pyo3(signature = (address, *, timeout=None, source_address=None, tls=None, family=None, **options))]
    #[allow(clippy::too_many_arguments)]
    fn connect<'py>(
        _cls: &Bound<'py, PyType>,
        py: Python<'py>,
        address: &Bound<'py, PyAny>,
        timeout: Option<&Bound<'py, PyAny>>,
        source_address: Option<&Bound<'py, PyAny>>,
        tls: Option<&Bound<'py, PyAny>>,
        family: Option<&Bound<'py, PyAny>>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let target = args::remote_address("address", address)?;
        let timeout = args::timeout("timeout", timeout)?;
        let source = match source_address {
            Some(s) if !s.is_none() => Some(args::ip_address("source_address", s)?),
            _ => None,
        };
        let family = family_arg(family)?;
        let opts = from_kwargs("AsyncTcpClient", options)?;
        core(py, opts.validate(crate::options::Proto::Tcp))?;
        let tls = client_tls_arg(py, tls)?;
        let c = ctx(py)?;
        let owner = Owner::of(&c.lp)?;
        let lp = c.lp.clone().unbind();
        c.spawn(async move {
            // One deadline: resolution, connect and handshake together.
            let deadline = Deadline::after(timeout);
            let (stream, peer) = connect_family(&target, &opts, source, family, deadline).await?;
            let conn = Arc::new(AsyncConn::new(stream, peer, timeout)?);
            if let Some(t) = &tls {
                let until = deadline.instant().map(tokio::time::Instant::from_std);
                conn.start_tls_client(t, &target.host, until).await?;
            }
            let host = target.host;
            Ok(Value::Make(Box::new(move |py| {
                let reader = Reader::new(py, conn.clone(), lp)?;
                Ok(Bound::new(
                    py,
                    AsyncTcpClient {
                        conn,
                        reader,
                        owner,
                        host,
                    },
                )?
                .into_any())
            })))
        })
    }

    /// Send some of ``data``; the number of bytes sent.
    fn send<'py>(&self, py: Python<'py>, data: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.owner.check(py, WHAT)?;
        let buf = ReadBuf::get("data", data)?;
        let (n, out) = self.send_now(py, buf.as_slice())?;
        if (n > 0 && out) || buf.as_slice().is_empty() {
            return ready_on(self.owner.lp(py), Ok(n.into_pyobject(py)?.into_any()));
        }
        let c = self.ctx(py)?;
        if n > 0 {
            // TLS records the session took but the socket did not: they go
            // out before this send counts as done.
            return self.write_rest(&c, buf.as_slice()[..n].to_vec(), n, Some(n));
        }
        let data = buf.as_slice().to_vec();
        let guard = self.conn.pending(true);
        let turn = self.conn.write_turn();
        let conn = self.conn.clone();
        c.spawn(async move {
            let r = conn.send(&data, turn).await;
            drop(guard);
            r.map(Value::Int)
        })
    }

    /// Send all of ``data``; None. On failure ``bytes_sent`` says how much
    /// went out.
    fn sendall<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.owner.check(py, WHAT)?;
        let buf = ReadBuf::get("data", data)?;
        let s = buf.as_slice();
        let (n, out) = self.send_now(py, s)?;
        if n == s.len() && out {
            return ready_on(self.owner.lp(py), Ok(py.None().into_bound(py)));
        }
        self.write_rest(&self.ctx(py)?, s.to_vec(), n, None)
    }

    /// Up to ``bufsize`` bytes; ``b""`` when the peer has closed.
    #[pyo3(signature = (bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, bufsize=65536)")]
    fn recv<'py>(&self, py: Python<'py>, bufsize: Int) -> PyResult<Bound<'py, PyAny>> {
        let n = bufsize.size("bufsize")?;
        self.read(py, OwnedWant::Some(n), Kind::Bytes)
    }

    /// Receive into a writable buffer (up to ``nbytes``, 0 = its length);
    /// the count, 0 at EOF.
    #[pyo3(signature = (buffer, nbytes=Int(0)),
           text_signature = "($self, buffer, nbytes=0)")]
    fn recv_into<'py>(
        &self,
        py: Python<'py>,
        buffer: &Bound<'py, PyAny>,
        nbytes: Int,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = args::nbytes(nbytes, WriteBuf::get("buffer", buffer)?.len())?;
        self.read(py, OwnedWant::Some(n), Kind::Into(buffer.clone().unbind()))
    }

    /// Exactly ``n`` bytes; ``ConnectionClosedError`` (with ``partial``)
    /// if the peer closes first.
    fn recv_exact<'py>(
        &self,
        py: Python<'py>,
        n: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = args::size("n", n)?;
        self.read(py, OwnedWant::Exact(n), Kind::Bytes)
    }

    /// Bytes up to and including ``delimiter`` (at most ``max_size``).
    #[pyo3(signature = (delimiter, max_size=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, delimiter, max_size=65536)")]
    fn recv_until<'py>(
        &self,
        py: Python<'py>,
        delimiter: &Bound<'_, PyAny>,
        max_size: Int,
    ) -> PyResult<Bound<'py, PyAny>> {
        let delim = args::delimiter("delimiter", delimiter)?;
        let max = max_size.size("max_size")?;
        self.read(py, OwnedWant::Until(delim, max), Kind::Bytes)
    }

    /// One line with its ``\n``; at EOF the unterminated rest, then ``b""``.
    #[pyo3(signature = (max_size=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, max_size=65536)")]
    fn recv_line<'py>(&self, py: Python<'py>, max_size: Int) -> PyResult<Bound<'py, PyAny>> {
        let max = max_size.size("max_size")?;
        self.read(py, OwnedWant::Line(max), Kind::Bytes)
    }

    /// ``async for line in client.lines()``: lines (with ``\n``) until the
    /// peer closes.
    #[pyo3(signature = (max_size=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, max_size=65536)")]
    fn lines(slf: Py<Self>, max_size: Int) -> PyResult<AsyncLineIterator> {
        Ok(AsyncLineIterator {
            client: slf,
            max_size: max_size.size("max_size")?,
        })
    }

    /// Send ``data`` and read one reply: up to and including ``until``
    /// (default ``b"\n"``), or exactly ``exact`` bytes.
    #[pyo3(signature = (data, *, until=None, exact=None, max_size=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, data, *, until=None, exact=None, max_size=65536)")]
    fn request<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'_, PyAny>,
        until: Option<&Bound<'_, PyAny>>,
        exact: Option<&Bound<'_, PyAny>>,
        max_size: Int,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.owner.check(py, WHAT)?;
        let buf = ReadBuf::get("data", data)?;
        let max_size = max_size.size("max_size")?;
        let mut delim = Vec::new();
        let (exact, max) = match reply_of(until, exact, max_size, &mut delim)? {
            Reply::Exact(n) => (Some(n), 0),
            Reply::Until(_, m) => (None, m),
        };
        let want = match exact {
            Some(n) => OwnedWant::Exact(n),
            None => OwnedWant::Until(delim, max),
        };
        let s = buf.as_slice();
        if !self.reader.answers_now() {
            if let Some(out) = self.conn.hand_off(s) {
                return self.reader.request(py, want, out);
            }
        }
        let (sent, out) = self.send_now(py, s)?;
        let fut = self.reader.read(py, want, Kind::Bytes)?;
        if sent < s.len() || !out {
            // The rest goes out through the runtime; if it fails, the
            // reply never comes: the read fails with the write's error.
            let rest = s.to_vec();
            let guard = self.conn.pending(true);
            let turn = self.conn.write_turn();
            let conn = self.conn.clone();
            let reader = self.reader.clone();
            let reply = fut.clone().unbind();
            self.ctx(py)?.spawn(async move {
                let r = conn.send_all(&rest, sent, turn).await;
                drop(guard);
                Ok(Value::Make(Box::new(move |py| {
                    if let Err(e) = r {
                        reader.fail(py, &reply, to_pyerr(py, e, None));
                    }
                    Ok(py.None().into_bound(py))
                })))
            })?;
        }
        Ok(fut)
    }

    /// Shut down one or both directions: ``"read"``, ``"write"``, ``"both"``.
    fn shutdown(&self, py: Python<'_>, how: &Bound<'_, PyAny>) -> PyResult<()> {
        let how = if how.is_instance_of::<PyInt>() {
            match args::int("how", how)?.0 {
                0 => "read",
                1 => "write",
                2 => "both",
                other => {
                    return Err(PyValueError::new_err(format!(
                        "how: must be 'read', 'write' or 'both', got {other}"
                    )))
                }
            }
            .to_string()
        } else {
            how.extract::<String>()
                .map_err(|_| PyTypeError::new_err("how: must be 'read', 'write' or 'both'"))?
        };
        let how = core(py, parse_shutdown(&how))?;
        core(py, self.conn.shutdown(how))
    }

    /// Close now (idempotent); calls in flight fail with an OSError.
    fn close(&self, py: Python<'_>) {
        self.shut(py);
    }

    /// ``await client.aclose()``: close, as an awaitable.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.shut(py);
        ctx(py)?.ready(Ok(py.None().into_bound(py)))
    }

    #[getter]
    fn closed(&self) -> bool {
        !self.conn.is_open()
    }

    /// Set the timeout of later calls: seconds, or None (no limit).
    fn settimeout(&self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.conn.set_timeout(args::timeout("value", value)?);
        Ok(())
    }

    fn gettimeout(&self) -> Option<f64> {
        args::timeout_out(self.conn.timeout())
    }

    #[getter]
    fn local_address(&self) -> (String, u16) {
        args::sockaddr_out(&self.conn.local_addr())
    }

    #[getter]
    fn peer_address(&self) -> (String, u16) {
        args::sockaddr_out(&self.conn.peer_addr())
    }

    fn fileno(&self) -> i32 {
        self.conn.fileno()
    }

    /// The socket options the kernel holds now, read back (a dict).
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let v = core(py, self.conn.options())?;
        to_dict(py, v)
    }

    /// Upgrade this plaintext connection to TLS (STARTTLS): ``tls`` is
    /// ``True`` (the default) or a ``socketkit.TlsConfig``; ``starttls``
    /// (``"smtp"``, ``"imap"``, ``"pop3"``, ``"ftp"``, ``"postgres"``)
    /// first runs that protocol's plaintext exchange. Under the client's
    /// timeout. Cancelling it closes the client.
    #[pyo3(signature = (tls=None, *, starttls=None), text_signature = "($self, tls=True, *, starttls=None)")]
    fn start_tls<'py>(
        &self,
        py: Python<'py>,
        tls: Option<&Bound<'py, PyAny>>,
        starttls: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        aio_tls::start_tls(c, &self.conn, &self.reader, &self.host, tls, starttls)
    }

    /// Run a dialogue (``socketkit.Send``, ``Expect``, ``StartTls`` steps)
    /// under the client's timeout; the groups of the last regex match or
    /// None; ``socketkit.DialogueError`` when a step does not pass. Bytes
    /// past the last match stay buffered for the next read. Cancelling it
    /// closes the client.
    #[pyo3(signature = (steps, *, tls=None), text_signature = "($self, steps, *, tls=True)")]
    fn run_steps<'py>(
        &self,
        py: Python<'py>,
        steps: &Bound<'py, PyAny>,
        tls: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        aio_tls::run_steps(c, &self.conn, &self.reader, &self.host, steps, tls)
    }

    /// What the TLS handshake agreed on (``socketkit.TlsInfo``), or None
    /// on a plain connection.
    fn tls_info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.conn.tls_info() {
            Some(i) => info_to_py(py, &i).map(Some),
            None => Ok(None),
        }
    }

    /// The kernel's view of the connection (Linux TCP_INFO), as
    /// ``TcpClient.tcp_info()``.
    fn tcp_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        tcp_info_dict(py, &core(py, self.conn.tcp_info())?)
    }

    /// Adopt a connected stdlib ``socket.socket`` (SOCK_STREAM) in the
    /// running loop; the stdlib object is detached, its timeout kept.
    #[classmethod]
    fn from_socket(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        sock: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let c = ctx(py)?;
        let owner = Owner::of(&c.lp)?;
        let (stream, peer, timeout) = aio_tls::adopt_socket(py, sock)?;
        let conn = Arc::new(AsyncConn::from_std(stream, peer, timeout));
        let reader = Reader::new(py, conn.clone(), c.lp.clone().unbind())?;
        Ok(AsyncTcpClient {
            conn,
            reader,
            owner,
            host: peer.ip().to_string(),
        })
    }

    /// Close this object and return the connection as a stdlib
    /// ``socket.socket`` with the same timeout. Refused under TLS, with
    /// bytes still buffered, or with a call in flight.
    fn detach<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.ctx(py)?;
        self.reader.pause(py, "detach")?;
        let timeout = self.conn.timeout();
        let s = core(py, self.conn.detach())?;
        if timeout.is_none() {
            s.set_nonblocking(false).map_err(|e| {
                to_pyerr(
                    py,
                    crate::error::Error::io(crate::error::Phase::Recv, None, e),
                    None,
                )
            })?;
        }
        args::stdlib_socket(py, socket2::Socket::from(s), timeout)
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let c = slf.get().ctx(slf.py())?;
        c.ready(Ok(slf.clone().into_any()))
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'_, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.shut(py);
        ctx(py)?.ready(Ok(false.into_pyobject(py)?.to_owned().into_any()))
    }

    fn __repr__(&self) -> String {
        self.repr()
    }
}

/// ``AsyncTcpClient.lines()``: an async iterator of lines (with ``\n``),
/// the unterminated rest last; stops at EOF.
#[pyclass(module = "socketkit._aio_core", frozen)]
pub struct AsyncLineIterator {
    client: Py<AsyncTcpClient>,
    max_size: usize,
}

#[pymethods]
impl AsyncLineIterator {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.get();
        client.read(py, OwnedWant::Line(self.max_size), Kind::Line)
    }
}
