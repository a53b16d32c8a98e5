//! The adapters that call Python from a server's threads (`handler(conn)`,
//! `on_message(msg)`, `handler(data, peer)`), and the one logging policy for
//! what they raise: a handler's bug is logged at ERROR with its traceback;
//! what the peer or `stop()` did is logged at DEBUG only.

use std::net::SocketAddr;

use pyo3::exceptions::{PyConnectionError, PyTimeoutError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use crate::py::args;
use crate::py::tcp::TcpClient;
use crate::server::{
    ConnHandler, ConnOutcome, DatagramHandler, MessageHandler, Outcome, StopSignal,
};
use crate::tcp::TcpConnection;

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

/// A message at DEBUG level on the `socketkit` logger, from a server
/// thread (`ThreadHooks::debug`): what a client did wrong, such as a
/// failed TLS handshake, which is no error of the server's.
pub fn log_debug(msg: &str) {
    let _ = Python::try_attach(|py| {
        if let Err(e) = logger(py).and_then(|l| l.call_method1("debug", (msg,))) {
            e.write_unraisable(py, None);
        }
    });
}

fn peer_text(peer: &SocketAddr) -> String {
    peer.to_string()
}

/// `handler(conn)` in a worker thread.
pub struct PyConnHandler {
    pub func: Py<PyAny>,
    pub idle_timeout: bool,
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
    // The type only, never the value: a reply is payload, and this error
    // is logged (nothing logs payloads).
    let name = v
        .get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string());
    Err(PyTypeError::new_err(format!(
        "{what} must return bytes or None, got {name}"
    )))
}

/// `on_message(message) -> bytes | None` for batches of whole messages.
pub struct PyMessageHandler {
    pub func: Py<PyAny>,
}

impl MessageHandler for PyMessageHandler {
    fn handle(&self, peer: SocketAddr, msgs: &[Vec<u8>], budget: usize) -> Vec<Outcome> {
        Python::try_attach(|py| {
            let f = self.func.bind(py);
            let mut outs = Vec::with_capacity(msgs.len());
            let mut replied = 0usize;
            for m in msgs {
                if replied >= budget && !outs.is_empty() {
                    break; // the rest once these are sent
                }
                let r = f
                    .call1((PyBytes::new(py, m),))
                    .and_then(|v| reply_bytes(&v, "on_message"));
                match r {
                    Ok(o) => {
                        if let Outcome::Reply(b) = &o {
                            replied = replied.saturating_add(b.len());
                        }
                        outs.push(o)
                    }
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
pub struct PyDatagramHandler {
    pub func: Py<PyAny>,
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

    fn reply_failed(&self, peer: SocketAddr, len: usize, err: &std::io::Error) {
        let limit = match peer {
            SocketAddr::V4(_) => MAX_UDP_REPLY_V4,
            SocketAddr::V6(_) => MAX_UDP_REPLY_V6,
        };
        let _ = Python::try_attach(|py| {
            let msg = format!(
                "handler {} returned a {len}-byte reply to {} that was not sent ({err}; \
                 a UDP datagram carries at most {limit} bytes over {})",
                func_name(self.func.bind(py)),
                peer_text(&peer),
                if peer.is_ipv4() { "IPv4" } else { "IPv6" },
            );
            if let Err(e) = logger(py).and_then(|l| l.call_method1("error", (msg,))) {
                e.write_unraisable(py, None);
            }
        });
    }
}

/// The largest UDP payload: 65,535 less the IPv4 and UDP headers (20 + 8),
/// or less the UDP header alone over IPv6 (its header is not counted).
const MAX_UDP_REPLY_V4: usize = 65_507;
const MAX_UDP_REPLY_V6: usize = 65_527;
