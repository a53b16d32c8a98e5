//! `socketkit.aio.AsyncUdpSocket`: argument and result conversion around
//! `aio::udp::AsyncUdp`; every I/O method returns an awaitable.

use std::net::SocketAddr;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};

use crate::addr::HostPort;
use crate::aio::udp::AsyncUdp;
use crate::defaults;
use crate::py::aio::{ctx, Ctx, Owner, Value};
use crate::py::args::{self, Int, ReadBuf};
use crate::py::blocking::core;
use crate::py::options::{from_kwargs, to_dict};

const WHAT: &str = "AsyncUdpSocket";

/// A UDP socket for asyncio (and uvloop): ``UdpSocket``'s calls as
/// awaitables. ``await AsyncUdpSocket.create(bind=None, *, connect=None,
/// timeout=None, **options)``: the same address rules and options as
/// ``UdpSocket`` (with neither ``bind`` nor ``connect`` the socket is made
/// by the first ``sendto``). A cancelled call leaves the socket usable.
/// The socket belongs to the loop it was created in.
#[pyclass(module = "socketkit._aio_core", frozen)]
pub struct AsyncUdpSocket {
    sock: Arc<AsyncUdp>,
    owner: Owner,
}

fn datagram<'py>(py: Python<'py>, d: &[u8], a: &SocketAddr) -> PyResult<Bound<'py, PyAny>> {
    Ok((PyBytes::new(py, d), args::sockaddr_out(a))
        .into_pyobject(py)?
        .into_any())
}

impl AsyncUdpSocket {
    fn ctx<'py>(&self, py: Python<'py>) -> PyResult<Ctx<'py>> {
        self.owner.ctx(py, WHAT)
    }
}

#[pymethods]
impl AsyncUdpSocket {
    /// ``await AsyncUdpSocket.create(bind=None, *, connect=None,
    /// timeout=None, **options)``.
    #[classmethod]
    #[pyo3(signature = (bind=None, *, connect=None, timeout=None, **options))]
    fn create<'py>(
        _cls: &Bound<'py, PyType>,
        py: Python<'py>,
        bind: Option<&Bound<'py, PyAny>>,
        connect: Option<&Bound<'py, PyAny>>,
        timeout: Option<&Bound<'py, PyAny>>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let bind = match bind {
            Some(b) if !b.is_none() => Some(args::address("bind", b)?),
            _ => None,
        };
        let connect = match connect {
            Some(c) if !c.is_none() => Some(args::remote_address("connect", c)?),
            _ => None,
        };
        let timeout = args::timeout("timeout", timeout)?;
        let opts = from_kwargs("AsyncUdpSocket", options)?;
        core(py, opts.validate(crate::options::Proto::Udp))?;
        let c = ctx(py)?;
        let owner = Owner::of(&c.lp)?;
        c.spawn(async move {
            let sock =
                Arc::new(AsyncUdp::create(bind.as_ref(), connect.as_ref(), opts, timeout).await?);
            Ok(Value::Make(Box::new(move |py| {
                Ok(Bound::new(py, AsyncUdpSocket { sock, owner })?.into_any())
            })))
        })
    }

    /// Send one datagram to ``address``; the bytes sent.
    fn sendto<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        let data = ReadBuf::get("data", data)?.as_slice().to_vec();
        let to = args::remote_address("address", address)?;
        let s = self.sock.clone();
        c.spawn(async move { s.send_to(&data, &to).await.map(Value::Int) })
    }

    /// One datagram and its sender: ``(data, (host, port))``.
    #[pyo3(signature = (bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, bufsize=65536)")]
    fn recvfrom<'py>(&self, py: Python<'py>, bufsize: Int) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        let n = bufsize.size("bufsize")?;
        let s = self.sock.clone();
        c.spawn(async move {
            let (d, a) = s.recv_from(n).await?;
            Ok(Value::Make(Box::new(move |py| datagram(py, &d, &a))))
        })
    }

    /// Send one datagram to the connected peer.
    fn send<'py>(&self, py: Python<'py>, data: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        let data = ReadBuf::get("data", data)?.as_slice().to_vec();
        let s = self.sock.clone();
        c.spawn(async move { s.send(&data).await.map(Value::Int) })
    }

    /// One datagram's data (at most ``bufsize`` bytes).
    #[pyo3(signature = (bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, bufsize=65536)")]
    fn recv<'py>(&self, py: Python<'py>, bufsize: Int) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        let n = bufsize.size("bufsize")?;
        let s = self.sock.clone();
        c.spawn(async move { s.recv_from(n).await.map(|(d, _)| Value::Bytes(d)) })
    }

    /// Send ``data``, return the first reply from the peer, resending on
    /// silence (``timeout`` seconds per try, ``retries`` extra tries).
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
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        let data = ReadBuf::get("data", data)?.as_slice().to_vec();
        let to = match address {
            Some(a) if !a.is_none() => Some(args::remote_address("address", a)?),
            _ => None,
        };
        let timeout = args::secs_f64("timeout", timeout)?;
        let retries = u32::try_from(retries.size("retries")?)
            .map_err(|_| PyValueError::new_err("retries is too large"))?;
        let bufsize = bufsize.size("bufsize")?;
        let s = self.sock.clone();
        c.spawn(async move {
            s.request(&data, to.as_ref(), timeout, retries, bufsize)
                .await
                .map(Value::Bytes)
        })
    }

    /// Send many datagrams (sendmmsg): ``(data, address)`` pairs, or bare
    /// ``data`` on a connected socket; how many were sent.
    fn send_many<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        let mut msgs: Vec<(Vec<u8>, Option<HostPort>)> = Vec::new();
        let mut last: Option<(Bound<'_, PyAny>, HostPort)> = None;
        for item in messages.try_iter()? {
            let item = item?;
            if let Ok(t) = item.cast::<PyTuple>() {
                if t.len() != 2 {
                    return Err(PyValueError::new_err(
                        "messages: each item must be (data, address) or data",
                    ));
                }
                let d = ReadBuf::get("messages", &t.get_item(0)?)?
                    .as_slice()
                    .to_vec();
                let addr = t.get_item(1)?;
                let hp = match &last {
                    Some((obj, hp)) if obj.is(&addr) => hp.clone(),
                    _ => {
                        let hp = args::remote_address("messages", &addr)?;
                        last = Some((addr, hp.clone()));
                        hp
                    }
                };
                msgs.push((d, Some(hp)));
            } else {
                msgs.push((ReadBuf::get("messages", &item)?.as_slice().to_vec(), None));
            }
        }
        let s = self.sock.clone();
        c.spawn(async move { s.send_many_to(msgs).await.map(Value::Int) })
    }

    /// Wait for one datagram, then up to ``max_messages`` queued ones:
    /// ``[(data, (host, port)), ...]`` (recvmmsg).
    #[pyo3(signature = (max_messages=Int::from(defaults::RECV_MANY), bufsize=Int::from(defaults::RECV_SIZE)),
           text_signature = "($self, max_messages=64, bufsize=65536)")]
    fn recv_many<'py>(
        &self,
        py: Python<'py>,
        max_messages: Int,
        bufsize: Int,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        let max = max_messages.size("max_messages")?;
        let n = bufsize.size("bufsize")?;
        let s = self.sock.clone();
        c.spawn(async move {
            let got = s.recv_many(max, n).await?;
            Ok(Value::Make(Box::new(move |py| {
                let out = PyList::empty(py);
                for (d, a) in &got {
                    out.append(datagram(py, d, a)?)?;
                }
                Ok(out.into_any())
            })))
        })
    }

    /// Connect to ``address`` (fixes the peer of ``send``/``recv``).
    fn connect<'py>(
        &self,
        py: Python<'py>,
        address: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.ctx(py)?;
        let to = args::remote_address("address", address)?;
        let s = self.sock.clone();
        c.spawn(async move { s.connect(&to).await.map(|()| Value::None) })
    }

    fn settimeout(&self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.sock.set_timeout(args::timeout("value", value)?);
        Ok(())
    }

    fn gettimeout(&self) -> Option<f64> {
        args::timeout_out(self.sock.timeout())
    }

    #[getter]
    fn local_address(&self) -> Option<(String, u16)> {
        self.sock.local_addr().as_ref().map(args::sockaddr_out)
    }

    #[getter]
    fn peer_address(&self) -> Option<(String, u16)> {
        self.sock.peer_addr().as_ref().map(args::sockaddr_out)
    }

    fn fileno(&self) -> i32 {
        self.sock.fileno()
    }

    fn close(&self) {
        self.sock.close();
    }

    /// Private: GSO trains ``send_many`` sent (tests).
    fn _gso_trains(&self) -> u64 {
        self.sock.gso_trains()
    }

    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.sock.close();
        ctx(py)?.ready(Ok(py.None().into_bound(py)))
    }

    #[getter]
    fn closed(&self) -> bool {
        !self.sock.is_open()
    }

    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let v = core(py, self.sock.options())?;
        to_dict(py, v)
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
        self.sock.close();
        ctx(py)?.ready(Ok(false.into_pyobject(py)?.to_owned().into_any()))
    }

    fn __repr__(&self) -> String {
        let local = self
            .sock
            .local_addr()
            .map_or_else(|| "unbound".to_string(), |a| a.to_string());
        let peer = self
            .sock
            .peer_addr()
            .map_or_else(String::new, |a| format!(" -> {a}"));
        let state = if self.sock.is_open() {
            "open"
        } else {
            "closed"
        };
        format!(
            "<socketkit.aio.AsyncUdpSocket {local}{peer} {state} fd={}>",
            self.sock.fileno()
        )
    }
}
