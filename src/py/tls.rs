//! TLS arguments and results: the `TlsConfig` class, `tls_arg` (the one
//! converter of every `tls=` argument), and `TlsInfo` back to Python (the
//! plain classes of `socketkit/tls.py`, built from what the core reports).

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString, PyTuple};

use crate::py::args::{self, type_name};
use crate::py::blocking::core;
use crate::tls::{CertInfo, ClientTls, RootPaths, TlsConfig as CoreTlsConfig, TlsInfo, TlsVersion};

/// TLS settings for ``tls=`` (``TcpClient``, ``start_tls``, servers).
///
/// ``TlsConfig(*, verify=True, ca_file=None, cert_file=None, key_file=None,
/// server_hostname=None, min_version=None, max_version=None, alpn=None,
/// client_ca_file=None)``
///
/// - ``verify``: a client fails the handshake when the server's certificate
///   does not verify. ``False`` completes it anyway; ``tls_info()`` still
///   reports the certificates and why they did not verify.
/// - ``ca_file``: PEM CA certificates trusted besides the system's (those
///   OpenSSL uses; ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` override them).
/// - ``cert_file``, ``key_file``: the client certificate (a server's
///   certificate chain), PEM, leaf first; the key is read from
///   ``cert_file`` when ``key_file`` is not given.
/// - ``server_hostname``: the name sent as SNI and verified, instead of
///   the host connected to (an IP address: no SNI, IP SANs checked).
/// - ``min_version``, ``max_version``: ``"1.2"`` or ``"1.3"``.
/// - ``alpn``: protocols to offer (a server: to accept), e.g. ``["h2",
///   "http/1.1"]``.
/// - ``client_ca_file``: a server requires client certificates signed by a
///   CA in this PEM file.
///
/// ``tls=True`` is ``TlsConfig()``. Files are read when the config is
/// first used, then kept (as an ``ssl.SSLContext`` would).
#[pyclass(module = "socketkit._core", name = "TlsConfig", frozen, eq, hash)]
pub struct TlsConfig {
    cfg: CoreTlsConfig,
    /// The client side built once (files read, roots parsed), for the
    /// system roots it was built with.
    client: Mutex<Option<(RootPaths, Arc<ClientTls>)>>,
}

impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.cfg == other.cfg
    }
}

impl Hash for TlsConfig {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.repr().hash(state)
    }
}

fn path_arg(arg: &'static str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<PathBuf>> {
    args::optional(obj, |o| {
        let os = o.py().import("os")?;
        let p = os.call_method1("fspath", (o,)).map_err(|_| {
            PyTypeError::new_err(format!(
                "{arg} must be a str or os.PathLike, got {}",
                type_name(o)
            ))
        })?;
        let s = p.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("{arg} must be a str path, got {}", type_name(&p)))
        })?;
        Ok(PathBuf::from(s.to_str()?))
    })
}

fn str_arg(arg: &'static str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    args::optional(obj, |o| {
        let s = o.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("{arg} must be a str, got {}", type_name(o)))
        })?;
        Ok(s.to_str()?.to_string())
    })
}

fn version_arg(arg: &'static str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<TlsVersion>> {
    args::optional(obj, |o| {
        let s = o.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{arg} must be '1.2' or '1.3', got {}",
                type_name(o)
            ))
        })?;
        core(o.py(), TlsVersion::parse(arg, s.to_str()?))
    })
}

/// A list of protocol names; a single str is one protocol.
fn alpn_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else {
        return Ok(Vec::new());
    };
    if let Ok(s) = o.cast::<PyString>() {
        return Ok(vec![s.to_str()?.to_string()]);
    }
    if !(o.is_instance_of::<PyList>() || o.is_instance_of::<PyTuple>()) {
        return Err(PyTypeError::new_err(format!(
            "alpn must be a list of str, got {}",
            type_name(o)
        )));
    }
    o.try_iter()?
        .map(|item| {
            let item = item?;
            let s = item.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "alpn must be a list of str, got an item of type {}",
                    type_name(&item)
                ))
            })?;
            Ok(s.to_str()?.to_string())
        })
        .collect()
}

fn path_out(p: &Option<PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.to_string_lossy().into_owned())
}

#[pymethods]
impl TlsConfig {
    #[new]
    #[pyo3(signature = (*, verify=None, ca_file=None, cert_file=None, key_file=None,
                        server_hostname=None, min_version=None, max_version=None,
                        alpn=None, client_ca_file=None),
           text_signature = "(*, verify=True, ca_file=None, cert_file=None, key_file=None, \
                             server_hostname=None, min_version=None, max_version=None, \
                             alpn=None, client_ca_file=None)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        verify: Option<&Bound<'_, PyAny>>,
        ca_file: Option<&Bound<'_, PyAny>>,
        cert_file: Option<&Bound<'_, PyAny>>,
        key_file: Option<&Bound<'_, PyAny>>,
        server_hostname: Option<&Bound<'_, PyAny>>,
        min_version: Option<&Bound<'_, PyAny>>,
        max_version: Option<&Bound<'_, PyAny>>,
        alpn: Option<&Bound<'_, PyAny>>,
        client_ca_file: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let cfg = CoreTlsConfig {
            verify: match verify {
                Some(v) => args::boolean("verify", v)?,
                None => true,
            },
            ca_file: path_arg("ca_file", ca_file)?,
            cert_file: path_arg("cert_file", cert_file)?,
            key_file: path_arg("key_file", key_file)?,
            server_hostname: str_arg("server_hostname", server_hostname)?,
            min_version: version_arg("min_version", min_version)?,
            max_version: version_arg("max_version", max_version)?,
            alpn: alpn_arg(alpn)?,
            client_ca_file: path_arg("client_ca_file", client_ca_file)?,
        };
        core(py, cfg.validate())?;
        Ok(Self::from_core(cfg))
    }

    /// Whether a client fails the handshake on a certificate that does not verify.
    #[getter]
    fn verify(&self) -> bool {
        self.cfg.verify
    }

    #[getter]
    fn ca_file(&self) -> Option<String> {
        path_out(&self.cfg.ca_file)
    }

    #[getter]
    fn cert_file(&self) -> Option<String> {
        path_out(&self.cfg.cert_file)
    }

    #[getter]
    fn key_file(&self) -> Option<String> {
        path_out(&self.cfg.key_file)
    }

    #[getter]
    fn server_hostname(&self) -> Option<String> {
        self.cfg.server_hostname.clone()
    }

    /// ``"1.2"``, ``"1.3"`` or None.
    #[getter]
    fn min_version(&self) -> Option<&'static str> {
        self.cfg.min_version.map(TlsVersion::as_str)
    }

    #[getter]
    fn max_version(&self) -> Option<&'static str> {
        self.cfg.max_version.map(TlsVersion::as_str)
    }

    /// The ALPN protocols, a tuple, or None when none are offered.
    #[getter]
    fn alpn<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        if self.cfg.alpn.is_empty() {
            return Ok(None);
        }
        PyTuple::new(py, &self.cfg.alpn).map(Some)
    }

    #[getter]
    fn client_ca_file(&self) -> Option<String> {
        path_out(&self.cfg.client_ca_file)
    }

    fn __repr__(&self) -> String {
        self.repr()
    }

    /// Pickle (and copy) through the keyword arguments.
    fn __getnewargs_ex__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
        Ok((PyTuple::empty(py), self.kwargs(py)?))
    }
}

impl TlsConfig {
    pub fn from_core(cfg: CoreTlsConfig) -> Self {
        TlsConfig {
            cfg,
            client: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &CoreTlsConfig {
        &self.cfg
    }

    /// The fields that differ from the defaults, as (name, value) pairs.
    fn fields(&self) -> Vec<(&'static str, Field)> {
        let c = &self.cfg;
        let mut v = Vec::new();
        if !c.verify {
            v.push(("verify", Field::Bool(false)));
        }
        for (name, p) in [
            ("ca_file", &c.ca_file),
            ("cert_file", &c.cert_file),
            ("key_file", &c.key_file),
        ] {
            if let Some(s) = path_out(p) {
                v.push((name, Field::Str(s)));
            }
        }
        if let Some(h) = &c.server_hostname {
            v.push(("server_hostname", Field::Str(h.clone())));
        }
        if let Some(m) = c.min_version {
            v.push(("min_version", Field::Str(m.as_str().into())));
        }
        if let Some(m) = c.max_version {
            v.push(("max_version", Field::Str(m.as_str().into())));
        }
        if !c.alpn.is_empty() {
            v.push(("alpn", Field::List(c.alpn.clone())));
        }
        if let Some(s) = path_out(&c.client_ca_file) {
            v.push(("client_ca_file", Field::Str(s)));
        }
        v
    }

    fn repr(&self) -> String {
        let parts: Vec<String> = self
            .fields()
            .into_iter()
            .map(|(name, f)| format!("{name}={}", f.repr()))
            .collect();
        format!("TlsConfig({})", parts.join(", "))
    }

    fn kwargs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, f) in self.fields() {
            match f {
                Field::Bool(b) => d.set_item(name, b)?,
                Field::Str(s) => d.set_item(name, s)?,
                Field::List(l) => d.set_item(name, l)?,
            }
        }
        Ok(d)
    }

    /// The client side of this config, built on first use (and again when
    /// SSL_CERT_FILE / SSL_CERT_DIR changed since).
    pub fn client_tls(&self) -> crate::error::Result<Arc<ClientTls>> {
        cached_client(&self.client, &self.cfg)
    }
}

enum Field {
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

impl Field {
    /// As Python's repr writes it.
    fn repr(&self) -> String {
        fn quote(s: &str) -> String {
            format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        match self {
            Field::Bool(b) => if *b { "True" } else { "False" }.into(),
            Field::Str(s) => quote(s),
            Field::List(l) => {
                let items: Vec<String> = l.iter().map(|s| quote(s)).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}

fn cached_client(
    cache: &Mutex<Option<(RootPaths, Arc<ClientTls>)>>,
    cfg: &CoreTlsConfig,
) -> crate::error::Result<Arc<ClientTls>> {
    let paths = RootPaths::from_env();
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((p, tls)) = c.as_ref() {
        if *p == paths {
            return Ok(tls.clone());
        }
    }
    let tls = Arc::new(ClientTls::new(cfg)?);
    *c = Some((paths, tls.clone()));
    Ok(tls)
}

/// A `tls=` argument: None or False (plain), True (the defaults), or a
/// `TlsConfig`. Anything else is a TypeError naming `tls`.
// The servers' converter (py/server.rs builds a ServerTls from it).
#[allow(dead_code)]
pub fn tls_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<CoreTlsConfig>> {
    Ok(tls_object(obj)?.map(|t| t.get().cfg.clone()))
}

/// `tls_arg`, as the `TlsConfig` object (True gives a shared default one),
/// so its built client side is reused across connections.
fn tls_object(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<TlsConfig>>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(b) = o.cast::<PyBool>() {
        if !b.is_true() {
            return Ok(None);
        }
        static DEFAULT: pyo3::sync::PyOnceLock<Py<TlsConfig>> = pyo3::sync::PyOnceLock::new();
        let d = DEFAULT.get_or_try_init(o.py(), || {
            Py::new(o.py(), TlsConfig::from_core(CoreTlsConfig::default()))
        })?;
        return Ok(Some(d.clone_ref(o.py())));
    }
    if let Ok(t) = o.cast::<TlsConfig>() {
        return Ok(Some(t.clone().unbind()));
    }
    Err(PyTypeError::new_err(format!(
        "tls must be True, False, None or a socketkit.TlsConfig, got {}",
        type_name(o)
    )))
}

/// A client's `tls=` argument, built (files read) and ready to connect with.
pub fn client_tls_arg(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Arc<ClientTls>>> {
    match tls_object(obj)? {
        None => Ok(None),
        Some(t) => core(py, t.get().client_tls()).map(Some),
    }
}

/// `start_tls`'s argument: like `tls_arg`, but plain is not an upgrade.
pub fn start_tls_arg(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<ClientTls>> {
    let obj = match obj {
        // Absent or None: the default, True.
        None => {
            return client_tls_arg(py, Some(PyBool::new(py, true).as_any()))
                .map(|t| t.expect("True is TLS"))
        }
        Some(o) => o,
    };
    client_tls_arg(py, Some(obj))?
        .ok_or_else(|| PyValueError::new_err("tls: start_tls needs True or a TlsConfig, got False"))
}

fn cert_dict<'py>(py: Python<'py>, c: &CertInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("subject", &c.subject)?;
    d.set_item("issuer", &c.issuer)?;
    d.set_item("sans", &c.sans)?;
    d.set_item("serial", &c.serial)?;
    d.set_item("sha256", &c.sha256)?;
    d.set_item("not_before", c.not_before)?;
    d.set_item("not_after", c.not_after)?;
    d.set_item("key_type", &c.key_type)?;
    d.set_item("key_bits", c.key_bits)?;
    d.set_item("signature_algorithm", &c.signature_algorithm)?;
    Ok(d)
}

/// A core `TlsInfo` as `socketkit.tls.TlsInfo` (its `_from_core` turns
/// Unix seconds into aware datetimes).
pub fn info_to_py<'py>(py: Python<'py>, info: &TlsInfo) -> PyResult<Bound<'py, PyAny>> {
    let d = PyDict::new(py);
    d.set_item("version", &info.version)?;
    d.set_item("cipher", &info.cipher)?;
    d.set_item("alpn", &info.alpn)?;
    d.set_item("verified", info.verified)?;
    d.set_item(
        "verify_error",
        info.verify_error.as_ref().map(|v| v.reason()),
    )?;
    let certs = info
        .certificates
        .iter()
        .map(|c| cert_dict(py, c))
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("certificates", certs)?;
    py.import("socketkit.tls")?
        .getattr("TlsInfo")?
        .call_method1("_from_core", (d,))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TlsConfig>()
}
