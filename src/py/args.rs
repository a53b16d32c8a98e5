//! Argument conversion shared by every binding: addresses, timeouts, byte
//! buffers. Wrong types raise TypeError, wrong values ValueError, both naming
//! the argument.

use std::net::SocketAddr;
use std::time::Duration;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::addr::{check_host, parse_host_port_as, HostPort, PortUse};

/// The Python type name of `obj` and, for a scalar, its value (`str
/// 'abc'`), for error messages: a message names the argument and the value.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    let name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    match short_repr(obj) {
        Some(r) => format!("{name} {r}"),
        None => name,
    }
}

/// The repr of a str, int or float, cut to a line's worth; `None` for
/// anything else (its repr may be huge or costly).
fn short_repr(obj: &Bound<'_, PyAny>) -> Option<String> {
    const MAX: usize = 40;
    if obj.is_instance_of::<PyString>() {
        let n = obj.len().ok()?;
        let shown = if n > MAX {
            obj.get_item(pyo3::types::PySlice::new(obj.py(), 0, MAX as isize, 1))
                .ok()?
        } else {
            obj.clone()
        };
        let r = shown.repr().ok()?.to_string();
        return Some(if n > MAX { format!("{r}...") } else { r });
    }
    if obj.is_instance_of::<PyBool>()
        || !(obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>())
    {
        return None;
    }
    let r = obj.repr().ok()?.to_string();
    Some(if r.len() > MAX {
        format!("{}...", &r[..MAX])
    } else {
        r
    })
}

/// A core argument error as ValueError (its text names the argument).
pub fn value_error(e: crate::error::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// `(host, port)`, `"host:port"` or `"[v6]:port"`.
pub fn address(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<HostPort> {
    address_as(arg, obj, PortUse::Bind)
}

/// [`address`] with the port checked for `usage`.
pub fn address_as(arg: &'static str, obj: &Bound<'_, PyAny>, usage: PortUse) -> PyResult<HostPort> {
    if let Ok(s) = obj.cast::<PyString>() {
        return parse_host_port_as(arg, s.to_str()?, usage).map_err(value_error);
    }
    if obj.is_instance_of::<PyTuple>() || obj.is_instance_of::<PyList>() {
        let len = obj.len()?;
        // The stdlib's IPv6 form (host, port, flowinfo, scope_id) is accepted.
        if !(2..=4).contains(&len) {
            return Err(PyValueError::new_err(format!(
                "{arg}: expected (host, port), got a sequence of {len} items"
            )));
        }
        let host = obj.get_item(0)?;
        let port = obj.get_item(1)?;
        let host = host.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{arg}: host must be a str, got {}",
                type_name(&host)
            ))
        })?;
        let port = port_number_as(arg, &port, usage)?;
        let host = check_host(arg, host.to_str()?).map_err(value_error)?;
        return Ok(HostPort { host, port });
    }
    Err(PyTypeError::new_err(format!(
        "{arg}: expected (host, port) or 'host:port', got {}",
        type_name(obj)
    )))
}

/// A port given as a Python int, checked for `usage`.
pub fn port_number_as(arg: &'static str, obj: &Bound<'_, PyAny>, usage: PortUse) -> PyResult<u16> {
    let p = int(arg, obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg}: port must be an int, got {}",
            type_name(obj)
        ))
    })?;
    // The Python int itself in the message: past i128 the value saturated.
    usage
        .check(arg, p.0)
        .map_err(|_| value_error(usage.out_of_range(arg, obj)))
}

/// An address to connect or send to: port 0 is refused.
pub fn remote_address(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<HostPort> {
    address_as(arg, obj, PortUse::Remote)
}

/// An address that must be an IP literal (a bind or source address).
pub fn ip_address(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
    let hp = address(arg, obj)?;
    let ip = hp.ip().ok_or_else(|| {
        PyValueError::new_err(format!("{arg}: expected an IP address, got {:?}", hp.host))
    })?;
    Ok(SocketAddr::new(ip, hp.port))
}

/// Seconds as a non-negative finite number.
pub fn seconds(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    if obj.is_instance_of::<PyBool>()
        || !(obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{arg} must be a number of seconds, got {}",
            type_name(obj)
        )));
    }
    let v: f64 = obj.extract()?;
    if !v.is_finite() || v < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{arg} must be a non-negative number of seconds, got {v}"
        )));
    }
    Duration::try_from_secs_f64(v)
        .map_err(|_| PyValueError::new_err(format!("{arg} is too large: {v}")))
}

/// `None` (block forever) or seconds.
pub fn timeout(arg: &'static str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => seconds(arg, o).map(Some),
    }
}

/// A timeout back to Python: float seconds or None.
pub fn timeout_out(t: Option<Duration>) -> Option<f64> {
    t.map(|d| d.as_secs_f64())
}

/// An int argument as Python gave it: any `int` but `bool`. Wide enough
/// that a huge value is reported as out of range (a ValueError naming the
/// argument and the value), never as pyo3's OverflowError; values past
/// i128 saturate, which is out of every range socketkit accepts.
///
/// Usable directly in a `#[pyo3(signature)]` (pyo3 then prefixes a
/// TypeError with the argument's name), then narrowed with [`Int::within`]
/// or [`Int::size`], which name it in a ValueError.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int(pub i128);

impl<'a, 'py> FromPyObject<'a, 'py> for Int {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
            return Err(PyTypeError::new_err(format!(
                "must be an int, got {}",
                type_name(&obj)
            )));
        }
        if let Ok(v) = obj.extract::<i128>() {
            return Ok(Int(v));
        }
        let negative = obj.lt(0i32)?;
        Ok(Int(if negative { i128::MIN } else { i128::MAX }))
    }
}

impl Int {
    /// The value as `T`, if it lies in `lo..=hi`.
    pub fn within<T: TryFrom<i128>>(self, arg: &str, lo: i128, hi: i128) -> PyResult<T> {
        if self.0 < lo || self.0 > hi {
            return Err(PyValueError::new_err(format!(
                "{arg} must be {lo}-{hi}, got {}",
                self.shown()
            )));
        }
        T::try_from(self.0)
            .map_err(|_| PyValueError::new_err(format!("{arg} is too large: {}", self.0)))
    }

    /// A non-negative count or size.
    pub fn size(self, arg: &str) -> PyResult<usize> {
        if self.0 < 0 {
            return Err(PyValueError::new_err(format!(
                "{arg} must be non-negative, got {}",
                self.shown()
            )));
        }
        usize::try_from(self.0)
            .map_err(|_| PyValueError::new_err(format!("{arg} is too large: {}", self.shown())))
    }

    fn shown(self) -> String {
        match self.0 {
            i128::MAX => "a number past 2**127".into(),
            i128::MIN => "a number below -2**127".into(),
            v => v.to_string(),
        }
    }
}

impl From<usize> for Int {
    fn from(v: usize) -> Self {
        Int(v as i128)
    }
}

/// An int argument given as an object: TypeError naming `arg` unless it is
/// an int (not a bool).
pub fn int(arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<Int> {
    obj.extract::<Int>()
        .map_err(|e| PyTypeError::new_err(format!("{arg} {}", e.value(obj.py()))))
}

/// An int in `lo..=hi`.
pub fn int_in<T: TryFrom<i128>>(
    arg: &str,
    obj: &Bound<'_, PyAny>,
    lo: i128,
    hi: i128,
) -> PyResult<T> {
    int(arg, obj)?.within(arg, lo, hi)
}

/// An optional argument: absent or `None` gives `None`.
pub fn optional<'a, 'py, T>(
    obj: Option<&'a Bound<'py, PyAny>>,
    convert: impl FnOnce(&'a Bound<'py, PyAny>) -> PyResult<T>,
) -> PyResult<Option<T>> {
    match obj {
        Some(o) if !o.is_none() => convert(o).map(Some),
        _ => Ok(None),
    }
}

/// A size argument: a non-negative int.
pub fn size(arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    int(arg, obj)?.size(arg)
}

/// `True` or `False`, nothing else (`1` is not a flag).
pub fn boolean(arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.cast::<PyBool>().map(|b| b.is_true()).map_err(|_| {
        PyTypeError::new_err(format!(
            "{arg} must be True or False, got {}",
            type_name(obj)
        ))
    })
}

/// A callable (a handler), or `None`.
pub fn callable(arg: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    optional(obj, |o| {
        if !o.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "{arg} must be callable, got {}",
                type_name(o)
            )));
        }
        Ok(o.clone().unbind())
    })
}

/// Seconds given as an already-extracted f64.
pub fn secs_f64(arg: &'static str, v: f64) -> PyResult<Duration> {
    if !v.is_finite() || v < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{arg} must be a non-negative number of seconds, got {v}"
        )));
    }
    Duration::try_from_secs_f64(v)
        .map_err(|_| PyValueError::new_err(format!("{arg} is too large: {v}")))
}

/// A readable, contiguous bytes-like object, held (pinned) while the GIL is
/// released so the kernel reads it in place.
pub struct ReadBuf {
    data: ReadData,
}

enum ReadData {
    /// `bytes` are immutable: holding a reference keeps the pointer valid,
    /// with no buffer export (cheaper for the many small datagrams of
    /// `send_many`).
    Bytes {
        _keep: Py<PyBytes>,
        raw: RawSlice,
    },
    Buffer(PyUntypedBuffer),
}

/// A pointer into an object this ReadBuf keeps alive.
struct RawSlice(*const u8, usize);

// SAFETY: the pointee is owned by a Python object kept alive (and, for
// bytes, immutable) for as long as the RawSlice exists.
unsafe impl Send for RawSlice {}
// SAFETY: as above; only read access is given out.
unsafe impl Sync for RawSlice {}

impl ReadBuf {
    pub fn get(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            let bytes = b.as_bytes();
            let raw = RawSlice(bytes.as_ptr(), bytes.len());
            return Ok(ReadBuf {
                data: ReadData::Bytes {
                    _keep: b.clone().unbind(),
                    raw,
                },
            });
        }
        if obj.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(format!(
                "{arg} must be bytes-like (bytes, bytearray, memoryview), got str: encode it first, e.g. {arg}.encode()"
            )));
        }
        let buf = PyUntypedBuffer::get(obj).map_err(|_| {
            PyTypeError::new_err(format!(
                "{arg} must be bytes-like (bytes, bytearray, memoryview), got {}",
                type_name(obj)
            ))
        })?;
        if !buf.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "{arg} must be a C-contiguous buffer"
            )));
        }
        Ok(ReadBuf {
            data: ReadData::Buffer(buf),
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        let (ptr, len) = match &self.data {
            ReadData::Bytes { raw, .. } => (raw.0, raw.1),
            ReadData::Buffer(buf) => (buf.buf_ptr() as *const u8, buf.len_bytes()),
        };
        if len == 0 {
            return &[];
        }
        // SAFETY: the bytes object or the buffer export is held for self's
        // lifetime, so the memory stays valid and (for bytearray) cannot be
        // resized; a buffer was checked C-contiguous.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// A writable, contiguous buffer for `recv_into`.
pub struct WriteBuf {
    buf: PyUntypedBuffer,
}

impl WriteBuf {
    pub fn get(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let buf = PyUntypedBuffer::get(obj).map_err(|_| {
            PyTypeError::new_err(format!(
                "{arg} must be a writable bytes-like object (bytearray, memoryview), got {}",
                type_name(obj)
            ))
        })?;
        if buf.readonly() {
            return Err(PyTypeError::new_err(format!(
                "{arg} must be writable, got a read-only {}",
                type_name(obj)
            )));
        }
        if !buf.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "{arg} must be a C-contiguous buffer"
            )));
        }
        Ok(WriteBuf { buf })
    }

    pub fn len(&self) -> usize {
        self.buf.len_bytes()
    }

    /// The first `n` bytes as a mutable slice.
    #[allow(clippy::mut_from_ref)]
    pub fn slice_mut(&self, n: usize) -> &mut [u8] {
        let n = n.min(self.len());
        if n == 0 {
            return &mut [];
        }
        // SAFETY: a held writable export of at least n contiguous bytes;
        // Python code racing on the same buffer is the caller's affair, as
        // with socket.recv_into.
        unsafe { std::slice::from_raw_parts_mut(self.buf.buf_ptr() as *mut u8, n) }
    }
}

/// `nbytes` of recv_into as the stdlib checks it.
pub fn nbytes(n: Int, buflen: usize) -> PyResult<usize> {
    let n = n.size("nbytes")?;
    if n > buflen {
        return Err(PyValueError::new_err(format!(
            "nbytes: greater than the buffer's length ({n} > {buflen})"
        )));
    }
    Ok(if n == 0 { buflen } else { n })
}

/// A delimiter: non-empty bytes.
pub fn delimiter(arg: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let d: Vec<u8> = if let Ok(b) = obj.cast::<PyBytes>() {
        b.as_bytes().to_vec()
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        b.to_vec()
    } else {
        return Err(PyTypeError::new_err(format!(
            "{arg} must be bytes, got {}",
            type_name(obj)
        )));
    };
    if d.is_empty() {
        return Err(PyValueError::new_err(format!("{arg} must not be empty")));
    }
    Ok(d)
}

/// `(host, port)` for Python.
pub fn sockaddr_out(a: &SocketAddr) -> (String, u16) {
    crate::addr::split_sockaddr(a)
}

/// Hand a socket back to Python as a stdlib `socket.socket` owning the fd,
/// with the timeout it had here (`detach()` of every socket object).
pub fn stdlib_socket<'py>(
    py: Python<'py>,
    sock: socket2::Socket,
    timeout: Option<Duration>,
) -> PyResult<Bound<'py, PyAny>> {
    use std::os::fd::IntoRawFd;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("fileno", sock.into_raw_fd())?;
    let out = py
        .import("socket")?
        .getattr("socket")?
        .call((), Some(&kwargs))?;
    out.call_method1("settimeout", (timeout_out(timeout),))?;
    Ok(out)
}

/// Take a connected stdlib TCP `socket.socket` over (`from_socket` of the
/// blocking and the async client): checked before `detach()`, so a refused
/// socket stays the caller's; returns the fd and the timeout it had.
pub fn adopt_stdlib_socket(
    py: Python<'_>,
    sock: &Bound<'_, PyAny>,
) -> PyResult<(std::os::fd::OwnedFd, Option<Duration>)> {
    use std::os::fd::FromRawFd;
    let socket_mod = py.import("socket")?;
    if !sock.is_instance(&socket_mod.getattr("socket")?)? {
        return Err(PyTypeError::new_err(format!(
            "sock must be a socket.socket, got {}",
            sock.get_type().name()?
        )));
    }
    if sock
        .getattr("type")?
        .ne(socket_mod.getattr("SOCK_STREAM")?)?
    {
        return Err(PyValueError::new_err(
            "sock: must be a SOCK_STREAM (TCP) socket",
        ));
    }
    let family = sock.getattr("family")?;
    if !(family.eq(socket_mod.getattr("AF_INET")?)? || family.eq(socket_mod.getattr("AF_INET6")?)?)
    {
        return Err(PyValueError::new_err(
            "sock: must be an AF_INET or AF_INET6 socket",
        ));
    }
    sock.call_method0("getpeername")?; // OSError(ENOTCONN) if not connected
    let timeout = timeout("timeout", Some(&sock.call_method0("gettimeout")?))?;
    let fd: i32 = sock.call_method0("detach")?.extract()?;
    // SAFETY: detach() handed us sole ownership of this open fd.
    Ok((unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }, timeout))
}
