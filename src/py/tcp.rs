//! `TcpClient`: argument and result conversion around `tcp::TcpConnection`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyTuple, PyType};
use socket2::Socket;

use crate::defaults;
use crate::py::args::{self, Int, ReadBuf, WriteBuf};
use crate::py::blocking::{blocking, core};
use crate::py::inline;
use crate::py::options::{from_kwargs, to_dict};
use crate::py::probe_args::family_arg;
use crate::py::service::{captures_to_py, dialogue_args, starttls_arg};
use crate::py::tcp_info::tcp_info_dict;
use crate::py::tls::{client_tls_arg, info_to_py, start_tls_arg};
use crate::service::starttls::negotiate;
use crate::service::steps::{run_steps, TlsSetup};
use crate::sock::parse_shutdown;
use crate::tcp::{connect_until, Reply, TcpConnection};
use crate::wait::Deadline;

// `lines()`'s iterator lives next door: this file stays under 600 lines.
#[path = "tcp_lines.rs"]
mod lines;
pub use lines::LineIterator;

/// A connected TCP socket (``socket.create_connection`` done right).
///
/// ``TcpClient(address, *, timeout=None, source_address=None, tls=None, **options)``
/// connects before it returns. ``address`` is ``(host, port)``,
/// ``"host:port"`` or ``"[v6addr]:port"``. A name is resolved to all its
/// addresses, which are raced as RFC 8305 does (IPv6 first, the next address
/// 250 ms later or as soon as one fails), so ``localhost`` works whichever
/// family the service listens on. ``timeout`` (seconds, ``None`` = wait
/// forever) is one deadline for the whole connect, name resolution
/// included, and then the timeout of every later call, as ``settimeout``.
///
/// ``tls``: ``None``/``False`` (plain TCP), ``True`` (system trust roots,
/// verification on) or a ``socketkit.TlsConfig``. The TLS handshake runs
/// inside the same connect deadline. The name verified and sent as SNI is
/// the config's ``server_hostname``, else the host of ``address`` (an IP
/// address: no SNI, the certificate's IP SANs are checked). Every recv and
/// send method then works over TLS; ``tls_info()`` tells what was agreed.
/// ``start_tls()`` upgrades a plaintext connection later (STARTTLS).
///
/// ``**options`` are socket options applied before connecting (each one is
/// described in ``socketkit.TcpOptions``); ``options()`` reads back what the
/// kernel holds:
// BEGIN generated: tcp-options (src/options/table.rs; SOCKETKIT_REGEN=1 cargo test docgen)
/// ``nodelay``, ``keepalive``, ``linger``, ``user_timeout``, ``recv_buffer``,
/// ``send_buffer``, ``reuse_address``, ``reuse_port``, ``ttl``, ``tos``,
/// ``only_v6``, ``bind_device``.
// END generated: tcp-options
///
/// Every blocking call releases the GIL and answers Ctrl-C within ~100 ms.
/// One read buffer serves every recv method, so mixing ``recv_line`` and
/// ``recv`` never loses bytes. One thread may read while another writes.
#[pyclass(module = "socketkit._core", frozen)]
pub struct TcpClient {
    conn: TcpConnection,
    /// The host connected to: the TLS name (SNI, verification) for
    /// `start_tls`. An IP address when there was no name.
    host: String,
    /// The user opened it, so the user closes it: dropping it open is a
    /// ResourceWarning, as for the stdlib's socket. A server's connections
    /// are the server's to close.
    owned: bool,
}

impl TcpClient {
    pub fn from_connection(conn: TcpConnection) -> Self {
        let host = conn.peer_addr().ip().to_string();
        TcpClient {
            conn,
            host,
            owned: false,
        }
    }

    /// The core connection (servers close it when a handler returns).
    pub fn connection(&self) -> &TcpConnection {
        &self.conn
    }
}

impl Drop for TcpClient {
    fn drop(&mut self) {
        if !(self.owned && self.conn.is_open()) {
            return;
        }
        let msg = format!("unclosed {}", self.__repr__());
        Python::attach(|py| {
            let category = py.get_type::<pyo3::exceptions::PyResourceWarning>();
            let Ok(text) = std::ffi::CString::new(msg) else {
                return;
            };
            // As socket.__del__ does: a warning turned into an error cannot
            // be raised from a destructor, so it goes to sys.unraisablehook.
            if let Err(e) = PyErr::warn(py, &category, &text, 1) {
                e.write_unraisable(py, None);
            }
        });
    }
}

#[pymethods]
impl TcpClient {
    #[new]
    #[pyo3(signature = (address, *, timeout=None, source_address=None, tls=None, family=None, **options))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        address: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
        source_address: Option<&Bound<'_, PyAny>>,
        tls: Option<&Bound<'_, PyAny>>,
        family: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let target = args::remote_address("address", address)?;
        let timeout = args::timeout("timeout", timeout)?;
        let source = match source_address {
            Some(s) if !s.is_none() => Some(args::ip_address("source_address", s)?),
            _ => None,
        };
        let family = family_arg(family)?;
        let opts = from_kwargs("TcpClient", options)?;
        core(py, opts.validate(crate::options::Proto::Tcp))?;
        let tls = client_tls_arg(py, tls)?;
        let conn = blocking(py, |intr| {
            // One deadline: resolution, connect and handshake together.
            let deadline = Deadline::after(timeout);
            let (sock, peer) = connect_until(&target, &opts, source, family, deadline, intr)?;
            let conn = TcpConnection::connected(sock, peer, timeout);
            if let Some(t) = &tls {
                conn.start_tls_client(t, &target.host, deadline, intr)?;
            }
            Ok(conn)
        })?;
        Ok(TcpClient {
            conn,
            host: target.host,
            owned: true,
        })
    }

    /// Adopt a connected stdlib ``socket.socket`` (SOCK_STREAM). The stdlib
    /// object is detached and must not be used afterwards; its timeout is kept.
    #[classmethod]
    fn from_socket(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        sock: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let (owned, timeout) = args::adopt_stdlib_socket(py, sock)?;
        let conn = core(py, TcpConnection::new(Socket::from(owned), timeout))?;
        let host = conn.peer_addr().ip().to_string();
        Ok(TcpClient {
            conn,
            host,
            owned: true,
        })
    }

    /// Close this object and return the connection as a stdlib
    /// ``socket.socket`` with the same timeout. Refused while received
    /// bytes wait unread; on a closed client, ``OSError`` (EBADF) as every
    /// other call (the stdlib's ``detach()`` returns -1 there: there is no
    /// socket to return).
    fn detach<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = self.conn.timeout();
        let s = core(py, self.conn.detach())?;
        args::stdlib_socket(py, s, timeout)
    }

    /// Upgrade this plaintext connection to TLS as the client (STARTTLS,
    /// once the protocol said so): ``tls`` is ``True`` (the default) or a
    /// ``socketkit.TlsConfig``. Bytes already received are handed to TLS.
    /// The handshake runs under the client's timeout. Raises
    /// ``socketkit.CertificateError`` / ``socketkit.TlsError`` on failure,
    /// ``ValueError`` when the connection already speaks TLS.
    ///
    /// ``starttls`` (``"smtp"``, ``"imap"``, ``"pop3"``, ``"ftp"``,
    /// ``"postgres"``) first runs that protocol's plaintext exchange (the
    /// greeting, EHLO + STARTTLS, ``a1 STARTTLS``, STLS, AUTH TLS, the
    /// SSLRequest) on a freshly connected client, then the handshake.
    #[pyo3(signature = (tls=None, *, starttls=None), text_signature = "($self, tls=True, *, starttls=None)")]
    fn start_tls(
        &self,
        py: Python<'_>,
        tls: Option<&Bound<'_, PyAny>>,
        starttls: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if self.conn.is_tls() {
            return Err(PyValueError::new_err(
                "start_tls: the connection already speaks TLS",
            ));
        }
        let t = start_tls_arg(py, tls)?;
        let proto = starttls_arg(starttls)?;
        blocking(py, |intr| {
            let deadline = Deadline::after(self.conn.timeout());
            if let Some(p) = proto {
                negotiate(&self.conn, p, deadline, intr)?;
            }
            self.conn.start_tls_client(&t, &self.host, deadline, intr)
        })
    }

    /// Run a dialogue on this connection: a list of ``socketkit.Send``,
    /// ``Expect`` and ``StartTls`` steps, under the client's timeout (each
    /// ``Expect`` may have its own, shorter one). Returns the groups of the
    /// last regex match (``tuple[bytes, ...]``) or None. A step that does
    /// not pass raises ``socketkit.DialogueError`` with ``failed_step`` and
    /// ``received``. Bytes that arrived after the last match stay buffered
    /// for the next ``recv``. A ``StartTls`` step uses ``tls`` (``True``:
    /// system roots).
    #[pyo3(signature = (steps, *, tls=None), text_signature = "($self, steps, *, tls=True)")]
    fn run_steps<'py>(
        &self,
        py: Python<'py>,
        steps: &Bound<'py, PyAny>,
        tls: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let (steps, client_tls) = dialogue_args(py, steps, tls)?;
        let finished = blocking(py, |intr| {
            let setup = client_tls.as_ref().map(|t| TlsSetup {
                tls: t,
                host: &self.host,
            });
            let deadline = Deadline::after(self.conn.timeout());
            match run_steps(&self.conn, &steps, setup.as_ref(), deadline, intr)? {
                Ok(mut f) => {
                    self.conn.unread(&std::mem::take(&mut f.rest))?;
                    Ok(f)
                }
                Err(fail) => Err(crate::error::Error::Dialogue {
                    step: fail.step,
                    received: fail.received,
                    reason: fail.reason,
                }),
            }
        })?;
        match finished.captures {
            Some(c) => Ok(Some(captures_to_py(py, &c)?)),
            None => Ok(None),
        }
    }

    /// What the TLS handshake agreed on (``socketkit.TlsInfo``: version,
    /// cipher, ALPN, verification outcome, the peer's certificates), or
    /// None on a plain connection.
    fn tls_info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.conn.tls_info() {
            Some(i) => info_to_py(py, &i).map(Some),
            None => Ok(None),
        }
    }

    /// Send some of ``data``; returns the number of bytes sent.
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buf = ReadBuf::get("data", data)?;
        inline::send(py, &self.conn, buf.as_slice())
    }

    /// Send all of ``data`` (bytes-like) or raise; returns None like the
    /// stdlib. On failure the exception's ``bytes_sent`` says how much went out.
    fn sendall(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let buf = ReadBuf::get("data", data)?;
        inline::send_all(py, &self.conn, buf.as_slice())
    }

    /// Up to ``bufsize`` bytes; ``b""`` when the peer has closed.
    #[pyo3(signature = (bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, bufsize=65536)")]
    fn recv<'py>(&self, py: Python<'py>, bufsize: Int) -> PyResult<Bound<'py, PyBytes>> {
        let n = bufsize.size("bufsize")?;
        let data = inline::recv(py, &self.conn, n)?;
        Ok(PyBytes::new(py, &data))
    }

    /// Receive into a writable buffer (up to ``nbytes``, 0 = its length);
    /// returns the count, 0 at EOF.
    #[pyo3(signature = (buffer, nbytes=Int(0)),
           text_signature = "($self, buffer, nbytes=0)")]
    fn recv_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>, nbytes: Int) -> PyResult<usize> {
        let buf = WriteBuf::get("buffer", buffer)?;
        let n = args::nbytes(nbytes, buf.len())?;
        inline::recv_into(py, &self.conn, || buf.slice_mut(n))
    }

    /// Exactly ``n`` bytes. Raises ``ConnectionClosedError`` (with
    /// ``partial``) if the peer closes first.
    fn recv_exact<'py>(
        &self,
        py: Python<'py>,
        n: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let n = args::size("n", n)?;
        let data = inline::recv_exact(py, &self.conn, n)?;
        Ok(PyBytes::new(py, &data))
    }

    /// Bytes up to and including ``delimiter``. Raises
    /// ``LimitExceededError`` past ``max_size`` bytes, and
    /// ``ConnectionClosedError`` (with ``partial``) if the peer closes first.
    #[pyo3(signature = (delimiter, max_size=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, delimiter, max_size=65536)")]
    fn recv_until<'py>(
        &self,
        py: Python<'py>,
        delimiter: &Bound<'_, PyAny>,
        max_size: Int,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let delim = args::delimiter("delimiter", delimiter)?;
        let max_size = max_size.size("max_size")?;
        let data = inline::recv_until(py, &self.conn, &delim, max_size)?;
        Ok(PyBytes::new(py, &data))
    }

    /// One line, keeping its ``\n``, like ``file.readline()``: at EOF the
    /// unterminated rest, then ``b""``. ``LimitExceededError`` past ``max_size``.
    #[pyo3(signature = (max_size=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, max_size=65536)")]
    fn recv_line<'py>(&self, py: Python<'py>, max_size: Int) -> PyResult<Bound<'py, PyBytes>> {
        let max_size = max_size.size("max_size")?;
        let data = inline::recv_line(py, &self.conn, max_size)?;
        Ok(PyBytes::new(py, &data))
    }

    /// Iterate over lines (with their ``\n``) until the peer closes.
    #[pyo3(signature = (max_size=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, max_size=65536)")]
    fn lines(slf: Py<Self>, max_size: Int) -> PyResult<LineIterator> {
        Ok(LineIterator {
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
    ) -> PyResult<Bound<'py, PyBytes>> {
        let buf = ReadBuf::get("data", data)?;
        let max_size = max_size.size("max_size")?;
        let until = until.filter(|u| !u.is_none());
        let exact = exact.filter(|e| !e.is_none());
        let delim;
        let reply = match (until, exact) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "request: give until= or exact=, not both",
                ))
            }
            (None, Some(n)) => Reply::Exact(args::size("exact", n)?),
            (Some(u), None) => {
                delim = args::delimiter("until", u)?;
                Reply::Until(&delim, max_size)
            }
            (None, None) => Reply::Until(b"\n", max_size),
        };
        let out = blocking(py, |intr| self.conn.request(buf.as_slice(), reply, intr))?;
        Ok(PyBytes::new(py, &out))
    }

    /// Send a file with zero copies (sendfile(2)); ``file`` is a binary file
    /// object or an fd. Returns the bytes sent and, like the stdlib, leaves
    /// the file position just past them.
    #[pyo3(signature = (file, offset=Int(0), count=None),
           text_signature = "($self, file, offset=0, count=None)")]
    fn sendfile(
        &self,
        py: Python<'_>,
        file: &Bound<'_, PyAny>,
        offset: Int,
        count: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let fd: i32 = if file.is_instance_of::<PyInt>() {
            file.extract()?
        } else if file.hasattr("fileno")? {
            file.call_method0("fileno")?.extract()?
        } else {
            return Err(PyTypeError::new_err(
                "file must be a file object opened in binary mode, or an fd",
            ));
        };
        let offset = offset.size("offset")? as u64;
        let count = match count {
            Some(c) if !c.is_none() => Some(args::size("count", c)? as u64),
            _ => None,
        };
        let sent = blocking(py, |intr| self.conn.sendfile(fd, offset, count, intr))?;
        if !file.is_instance_of::<PyInt>() && file.hasattr("seek")? {
            file.call_method1("seek", (offset + sent,))?;
        }
        Ok(sent)
    }

    /// Shut down one or both directions: ``"read"``, ``"write"``, ``"both"``
    /// (or ``socket.SHUT_RD``/``SHUT_WR``/``SHUT_RDWR``).
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
        blocking(py, |intr| self.conn.shutdown_interruptible(how, intr))
    }

    /// Close the connection (idempotent). A call blocked in another thread
    /// wakes up with an error. Bytes received and not yet read are dropped;
    /// ``local_address`` and ``peer_address`` stay readable (the addresses
    /// the connection had), every other call raises ``OSError`` (EBADF).
    fn close(&self) {
        self.conn.close();
    }

    /// True once ``close()`` or ``detach()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        !self.conn.is_open()
    }

    /// Set the timeout of later calls: seconds, or None to block forever.
    fn settimeout(&self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.conn.set_timeout(args::timeout("timeout", value)?);
        Ok(())
    }

    /// The timeout in seconds, or None.
    fn gettimeout(&self) -> Option<f64> {
        args::timeout_out(self.conn.timeout())
    }

    /// ``(host, port)`` of this end; after ``close()`` or ``detach()``,
    /// the address it had (as ``peer_address``).
    #[getter]
    fn local_address(&self) -> (String, u16) {
        args::sockaddr_out(&self.conn.local_addr())
    }

    /// ``(host, port)`` of the peer.
    #[getter]
    fn peer_address(&self) -> (String, u16) {
        args::sockaddr_out(&self.conn.peer_addr())
    }

    /// The file descriptor, or -1 once closed.
    fn fileno(&self) -> i32 {
        self.conn.fileno()
    }

    /// The socket options the kernel holds now, read back (a dict).
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let v = core(py, self.conn.options())?;
        to_dict(py, v)
    }

    /// The kernel's view of the connection (Linux TCP_INFO): ``state``,
    /// ``rtt_ms``, ``rttvar_ms``, ``min_rtt_ms``, ``rto_ms``, ``retransmits``,
    /// ``total_retrans``, ``lost``, ``unacked``, ``cwnd``, ``ssthresh``,
    /// ``mss``, ``rcv_mss``, ``pmtu``, ``bytes_acked``, ``bytes_received``,
    /// ``segs_out``, ``segs_in``, ``notsent_bytes``.
    fn tcp_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        tcp_info_dict(py, &core(py, self.conn.tcp_info())?)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.conn.close();
        false
    }

    fn __repr__(&self) -> String {
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
            // Upgraded, but no finished handshake to describe.
            None if self.conn.is_tls() => " tls".into(),
            None => String::new(),
        };
        format!(
            "<socketkit.TcpClient {} -> {} {state}{tls} fd={} timeout={t}>",
            self.conn.local_addr(),
            self.conn.peer_addr(),
            self.conn.fileno()
        )
    }
}
