//! `UdpSocket` and `UdpClient`: conversion around `udp::UdpSock`.

use std::net::IpAddr;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString, PyTuple};

use crate::addr::HostPort;
use crate::defaults;
use crate::py::args::{self, Int, ReadBuf, WriteBuf};
use crate::py::blocking::{blocking, core};
use crate::py::options::{from_kwargs, to_dict};
use crate::udp::UdpSock;

/// A received datagram as Python sees it: ``(data, (host, port))``.
type Datagram<'py> = (Bound<'py, PyBytes>, Bound<'py, PyTuple>);

/// A UDP socket (``socket.socket(AF_INET, SOCK_DGRAM)`` done right).
///
/// ``UdpSocket(bind=None, *, connect=None, timeout=None, **options)``:
/// ``bind`` is the local address to receive on (``("127.0.0.1", 0)`` picks a
/// free port); ``connect`` fixes the peer so ``send``/``recv`` work and an
/// ICMP "port unreachable" comes back as ``ConnectionRefusedError``. With
/// neither, the socket is made by the first ``sendto``, in the family of the
/// destination. A host name picks the socket's family, else IPv4 first.
///
/// ``timeout`` (seconds, ``None`` = wait forever) applies to every call.
/// ``**options`` are socket options (each one is described in
/// ``socketkit.UdpOptions``); ``options()`` reads back what the kernel holds:
// BEGIN generated: udp-options (src/options/table.rs; SOCKETKIT_REGEN=1 cargo test docgen)
/// ``recv_buffer``, ``send_buffer``, ``reuse_address``, ``reuse_port``,
/// ``ttl``, ``tos``, ``only_v6``, ``bind_device``, ``broadcast``,
/// ``multicast_ttl``, ``multicast_loop``.
// END generated: udp-options
///
/// Every blocking call releases the GIL and answers Ctrl-C within ~100 ms.
#[pyclass(module = "socketkit._core", frozen, subclass)]
pub struct UdpSocket {
    sock: UdpSock,
}

fn ip_text(obj: &Bound<'_, PyAny>, arg: &'static str) -> PyResult<IpAddr> {
    let s = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{arg} must be an IP address string")))?;
    s.to_str()?
        .parse()
        .map_err(|_| PyValueError::new_err(format!("{arg}: not an IP address: {s}")))
}

fn interface_text(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) if o.is_instance_of::<PyInt>() => Ok(Some(
            args::int_in::<u32>("interface", o, 0, u32::MAX.into())?.to_string(),
        )),
        Some(o) => Ok(Some(
            o.cast::<PyString>()
                .map_err(|_| {
                    PyTypeError::new_err(
                        "interface must be an IPv4 address, an interface name or an index",
                    )
                })?
                .to_str()?
                .to_owned(),
        )),
    }
}

impl UdpSocket {
    fn build(
        py: Python<'_>,
        bind: Option<HostPort>,
        connect: Option<HostPort>,
        timeout: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
        who: &str,
    ) -> PyResult<Self> {
        let timeout = args::timeout("timeout", timeout)?;
        let opts = from_kwargs(who, options)?;
        let sock = blocking(py, |intr| {
            UdpSock::new(bind.as_ref(), connect.as_ref(), opts, timeout, intr)
        })?;
        Ok(UdpSocket { sock })
    }
}

#[pymethods]
impl UdpSocket {
    #[new]
    #[pyo3(signature = (bind=None, *, connect=None, timeout=None, **options))]
    fn new(
        py: Python<'_>,
        bind: Option<&Bound<'_, PyAny>>,
        connect: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let bind = match bind {
            Some(b) if !b.is_none() => Some(args::address("bind", b)?),
            _ => None,
        };
        let connect = match connect {
            Some(c) if !c.is_none() => Some(args::remote_address("connect", c)?),
            _ => None,
        };
        Self::build(py, bind, connect, timeout, options, "UdpSocket")
    }

    /// Send one datagram to ``address``; returns the bytes sent.
    fn sendto(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let buf = ReadBuf::get("data", data)?;
        let to = args::remote_address("address", address)?;
        blocking(py, |intr| self.sock.send_to(buf.as_slice(), &to, intr))
    }

    /// One datagram (at most ``bufsize`` bytes; the rest of a longer one is
    /// dropped) and the sender: ``(data, (host, port))``.
    #[pyo3(signature = (bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, bufsize=65536)")]
    fn recvfrom<'py>(
        &self,
        py: Python<'py>,
        bufsize: Int,
    ) -> PyResult<(Bound<'py, PyBytes>, (String, u16))> {
        let n = bufsize.size("bufsize")?;
        let (data, from) = blocking(py, |intr| self.sock.recv_from(n, intr))?;
        Ok((PyBytes::new(py, &data), args::sockaddr_out(&from)))
    }

    /// Receive one datagram into a writable buffer: ``(nbytes, (host, port))``.
    #[pyo3(signature = (buffer, nbytes=Int(0)),
           text_signature = "($self, buffer, nbytes=0)")]
    fn recvfrom_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        nbytes: Int,
    ) -> PyResult<(usize, (String, u16))> {
        let buf = WriteBuf::get("buffer", buffer)?;
        let n = args::nbytes(nbytes, buf.len())?;
        let (got, from) = blocking(py, |intr| self.sock.recv_from_into(buf.slice_mut(n), intr))?;
        Ok((got, args::sockaddr_out(&from)))
    }

    /// Send one datagram to the connected peer.
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buf = ReadBuf::get("data", data)?;
        blocking(py, |intr| self.sock.send(buf.as_slice(), intr))
    }

    /// One datagram from the connected peer (at most ``bufsize`` bytes).
    #[pyo3(signature = (bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, bufsize=65536)")]
    fn recv<'py>(&self, py: Python<'py>, bufsize: Int) -> PyResult<Bound<'py, PyBytes>> {
        let n = bufsize.size("bufsize")?;
        let (data, _) = blocking(py, |intr| self.sock.recv_from(n, intr))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Send many datagrams in few system calls (sendmmsg on Linux; runs of
    /// one size to one address as UDP GSO trains where the kernel allows).
    /// ``messages`` holds ``(data, address)`` pairs, or bare ``data`` on a
    /// connected socket. Returns how many datagrams were sent (all of them,
    /// or an exception whose ``bytes_sent`` is the count that went out).
    fn send_many(&self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut bufs: Vec<ReadBuf> = Vec::new();
        let mut dests: Vec<Option<HostPort>> = Vec::new();
        // Batches usually repeat one address object: parse it once.
        let mut last_addr: Option<(Bound<'_, PyAny>, HostPort)> = None;
        for item in messages.try_iter()? {
            let item = item?;
            if let Ok(t) = item.cast::<PyTuple>() {
                if t.len() != 2 {
                    return Err(PyValueError::new_err(
                        "messages: each item must be (data, address) or data",
                    ));
                }
                bufs.push(ReadBuf::get("messages", &t.get_item(0)?)?);
                let addr = t.get_item(1)?;
                let hp = match &last_addr {
                    Some((obj, hp)) if obj.is(&addr) => hp.clone(),
                    _ => {
                        let hp = args::remote_address("messages", &addr)?;
                        last_addr = Some((addr, hp.clone()));
                        hp
                    }
                };
                dests.push(Some(hp));
            } else {
                bufs.push(ReadBuf::get("messages", &item)?);
                dests.push(None);
            }
        }
        blocking(py, |intr| {
            let wanted: Vec<HostPort> = dests.iter().flatten().cloned().collect();
            let mut resolved = self.sock.resolve_many(&wanted, intr)?.into_iter();
            let msgs: Vec<(&[u8], Option<std::net::SocketAddr>)> = bufs
                .iter()
                .zip(&dests)
                .map(|(b, d)| (b.as_slice(), d.as_ref().and_then(|_| resolved.next())))
                .collect();
            self.sock.send_many(&msgs, intr)
        })
    }

    /// Wait (up to the timeout) for at least one datagram, then return up to
    /// ``max_messages`` queued ones as ``[(data, (host, port)), ...]``
    /// (recvmmsg on Linux: one system call for the batch; the first call
    /// turns on UDP GRO where the kernel has it, and buffers it coalesces
    /// are cut back into the datagrams that were sent).
    #[pyo3(signature = (max_messages=Int::from(defaults::RECV_MANY), bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, max_messages=64, bufsize=65536)")]
    fn recv_many<'py>(
        &self,
        py: Python<'py>,
        max_messages: Int,
        bufsize: Int,
    ) -> PyResult<Vec<Datagram<'py>>> {
        let max = max_messages.size("max_messages")?;
        let n = bufsize.size("bufsize")?;
        let got = blocking(py, |intr| self.sock.recv_many(max, n, intr))?;
        // A batch usually comes from one peer: build its (host, port) once.
        let mut last: Option<(std::net::SocketAddr, Bound<'py, PyTuple>)> = None;
        let mut out = Vec::with_capacity(got.len());
        for (d, a) in &got {
            let peer = match &last {
                Some((addr, t)) if addr == a => t.clone(),
                _ => {
                    let t = args::sockaddr_out(a).into_pyobject(py)?;
                    last = Some((*a, t.clone()));
                    t
                }
            };
            out.push((PyBytes::new(py, d), peer));
        }
        Ok(out)
    }

    /// Private: allow or forbid UDP GSO in ``send_many`` and GRO in
    /// ``recv_many`` (both allowed by default; the results are the same).
    #[pyo3(signature = (*, gso, gro))]
    fn _set_offload(&self, gso: bool, gro: bool) {
        self.sock.set_offload(gso, gro);
    }

    /// Private: ``(GSO trains sent, coalesced GRO buffers received)``.
    fn _offload_counts(&self) -> (u64, u64) {
        self.sock.offload_counts()
    }

    /// Connect to ``address`` (fixes the peer of ``send``/``recv``).
    fn connect(&self, py: Python<'_>, address: &Bound<'_, PyAny>) -> PyResult<()> {
        let to = args::remote_address("address", address)?;
        blocking(py, |intr| self.sock.connect(&to, intr))
    }

    /// Send ``data`` and return the first reply from the peer, resending on
    /// silence: waits ``timeout`` seconds per try, ``retries`` extra tries,
    /// then raises ``TimeoutError``. ``address`` is needed unless connected;
    /// datagrams from anyone else are ignored.
    #[pyo3(signature = (data, address=None, *, timeout=defaults::UDP_TIMEOUT, retries=Int::from(defaults::UDP_RETRIES), bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, data, address=None, *, timeout=1.0, retries=2, bufsize=65536)")]
    fn request<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'_, PyAny>,
        address: Option<&Bound<'_, PyAny>>,
        timeout: f64,
        retries: Int,
        bufsize: Int,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let buf = ReadBuf::get("data", data)?;
        let to = match address {
            Some(a) if !a.is_none() => Some(args::remote_address("address", a)?),
            _ => None,
        };
        let timeout = args::secs_f64("timeout", timeout)?;
        let retries = u32::try_from(retries.size("retries")?)
            .map_err(|_| PyValueError::new_err("retries is too large"))?;
        let bufsize = bufsize.size("bufsize")?;
        let out = blocking(py, |intr| {
            self.sock
                .request(buf.as_slice(), to.as_ref(), timeout, retries, bufsize, intr)
        })?;
        Ok(PyBytes::new(py, &out))
    }

    /// Join multicast ``group``; ``interface`` is the local IPv4 address
    /// (IPv4) or the interface name/index (IPv6); default: the kernel's choice.
    #[pyo3(signature = (group, interface=None))]
    fn join_multicast(
        &self,
        py: Python<'_>,
        group: &Bound<'_, PyAny>,
        interface: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let g = ip_text(group, "group")?;
        let i = interface_text(interface)?;
        core(py, self.sock.join_multicast(g, i.as_deref()))
    }

    /// Leave a multicast group joined with ``join_multicast``.
    #[pyo3(signature = (group, interface=None))]
    fn leave_multicast(
        &self,
        py: Python<'_>,
        group: &Bound<'_, PyAny>,
        interface: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let g = ip_text(group, "group")?;
        let i = interface_text(interface)?;
        core(py, self.sock.leave_multicast(g, i.as_deref()))
    }

    /// Set the timeout of later calls: seconds, or None to block forever.
    fn settimeout(&self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.sock.set_timeout(args::timeout("timeout", value)?);
        Ok(())
    }

    /// The timeout in seconds, or None.
    fn gettimeout(&self) -> Option<f64> {
        args::timeout_out(self.sock.timeout())
    }

    /// ``(host, port)`` this socket is bound to, or None before it exists.
    #[getter]
    fn local_address(&self) -> Option<(String, u16)> {
        self.sock.local_addr().map(|a| args::sockaddr_out(&a))
    }

    /// ``(host, port)`` of the connected peer, or None.
    #[getter]
    fn peer_address(&self) -> Option<(String, u16)> {
        self.sock.peer_addr().map(|a| args::sockaddr_out(&a))
    }

    /// The file descriptor, or -1 when closed or not made yet.
    fn fileno(&self) -> i32 {
        self.sock.fileno()
    }

    /// Close the socket (idempotent).
    fn close(&self) {
        self.sock.close();
    }

    /// True once ``close()`` or ``detach()`` was called (or before the
    /// first ``sendto`` made the socket).
    #[getter]
    fn closed(&self) -> bool {
        !self.sock.is_open()
    }

    /// The socket options the kernel holds now, read back (a dict).
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let v = core(py, self.sock.options())?;
        to_dict(py, v)
    }

    /// Close this object and return the socket as a stdlib ``socket.socket``.
    fn detach<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let timeout = self.sock.timeout();
        let s = core(py, self.sock.detach())?;
        args::stdlib_socket(py, s, timeout)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.sock.close();
        false
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let me = slf.get();
        let name = slf.get_type().name()?;
        let local = me
            .sock
            .local_addr()
            .map_or("unbound".to_string(), |a| a.to_string());
        let peer = me
            .sock
            .peer_addr()
            .map_or(String::new(), |a| format!(" -> {a}"));
        let state = if me.sock.is_open() { "open" } else { "closed" };
        let t = me
            .sock
            .timeout()
            .map_or("None".to_string(), |d| format!("{}", d.as_secs_f64()));
        Ok(format!(
            "<socketkit.{name} {local}{peer} {state} timeout={t}>"
        ))
    }
}

/// A connected UDP socket: ``UdpClient(address, *, bind=None, timeout=None, **options)``
/// is ``UdpSocket(bind, connect=address, ...)``. Use ``send``, ``recv`` and
/// ``request(data)``.
#[pyclass(module = "socketkit._core", frozen, extends = UdpSocket)]
pub struct UdpClient;

#[pymethods]
impl UdpClient {
    #[new]
    #[pyo3(signature = (address, *, bind=None, timeout=None, **options))]
    fn new(
        py: Python<'_>,
        address: &Bound<'_, PyAny>,
        bind: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let connect = args::remote_address("address", address)?;
        let bind = match bind {
            Some(b) if !b.is_none() => Some(args::address("bind", b)?),
            _ => None,
        };
        let base = UdpSocket::build(py, bind, Some(connect), timeout, options, "UdpClient")?;
        Ok(PyClassInitializer::from(base).add_subclass(UdpClient))
    }
}
