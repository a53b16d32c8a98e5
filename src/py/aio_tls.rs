//! The TLS and hand-over methods of `aio.AsyncTcpClient` (`start_tls`,
//! `run_steps`, `from_socket`, `detach`): argument conversion around
//! `aio/tls.rs`. A handshake runs on the aio runtime; a STARTTLS preset or
//! a dialogue runs the core's blocking code on a helper thread over the
//! lent socket (`AsyncConn::lend`), which ends with the call.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::aio::tcp::AsyncConn;
use crate::aio::tls::{Busy, CloseUnlessDone};
use crate::error::{Error, Phase, Result as CoreResult};
use crate::py::aio::{Ctx, Value};
use crate::py::aio_probe::{Flag, SetOnDrop};
use crate::py::args;
use crate::py::blocking::core;
use crate::py::errors::to_pyerr;
use crate::py::service::{captures_to_py, dialogue_args, starttls_arg};
use crate::py::tls::start_tls_arg;
use crate::service::starttls::negotiate;
use crate::service::steps::{run_steps as run_dialogue, TlsSetup};
use crate::tcp::TcpConnection;
use crate::wait::{Deadline, Interrupt};

use super::aio_reader::Reader;

/// What a lent job returns: its result, and bytes it read past what it
/// consumed (they go back to the client's buffer first).
type Lent<T> = (CoreResult<T>, Vec<u8>);

/// Run `job` on a helper thread over the lent socket, then hand the
/// socket back; `make` builds the result on the loop's thread. Cancelling
/// the awaitable interrupts the job (within one 100 ms wait slice) and
/// closes the client.
fn lend<'py, T, J, M>(
    c: &Ctx<'py>,
    conn: &Arc<AsyncConn>,
    busy: Busy,
    job: J,
    make: M,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Send + 'static,
    J: FnOnce(&TcpConnection, &dyn Interrupt) -> Lent<T> + Send + 'static,
    M: for<'a> FnOnce(Python<'a>, T) -> PyResult<Bound<'a, PyAny>> + Send + 'static,
{
    let py = c.lp.py();
    let tc = core(py, conn.lend())?;
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::oneshot::channel::<CoreResult<T>>();
    let intr = Flag(flag.clone());
    let back = conn.clone();
    std::thread::Builder::new()
        .name("socketkit-aio-lend".into())
        .spawn(move || {
            let (r, first) = job(&tc, &intr);
            let r = match r {
                Err(Error::Interrupted) => Err(Error::Interrupted),
                // Closed meanwhile: the fd goes with `tc`.
                _ if !back.is_open() => Err(Error::ClosedSocket),
                r => back.restore(tc, &first).and(r),
            };
            // Free for other calls only once the socket is back.
            drop(busy);
            let _ = tx.send(r);
        })
        .map_err(|e| to_pyerr(py, Error::io(Phase::Connect, None, e), None))?;
    let conn = conn.clone();
    c.spawn(async move {
        let _cancel = SetOnDrop(flag);
        let guard = CloseUnlessDone::new(&conn);
        let r = rx.await.unwrap_or(Err(Error::Interrupted));
        guard.done();
        let v = r?;
        Ok(Value::Make(Box::new(move |py| make(py, v))))
    })
}

/// Closes the client on the loop's thread as soon as its awaitable is
/// cancelled, so `closed` is true when the cancelled task resumes (the
/// runtime's side, `CloseUnlessDone`, follows a moment later).
#[pyclass(module = "socketkit._aio_core", frozen)]
struct CloseOnCancel {
    conn: Arc<AsyncConn>,
    reader: Arc<Reader>,
}

#[pymethods]
impl CloseOnCancel {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("cancelled")?.is_truthy()? {
            self.reader.close(fut.py());
            self.conn.close();
        }
        Ok(())
    }
}

fn close_on_cancel<'py>(
    fut: Bound<'py, PyAny>,
    conn: &Arc<AsyncConn>,
    reader: &Arc<Reader>,
) -> PyResult<Bound<'py, PyAny>> {
    let cb = CloseOnCancel {
        conn: conn.clone(),
        reader: reader.clone(),
    };
    fut.call_method1("add_done_callback", (cb,))?;
    Ok(fut)
}

/// Refuse a second upgrade, mark the client busy and stop its reader.
fn begin(
    py: Python<'_>,
    conn: &Arc<AsyncConn>,
    reader: &Reader,
    call: &'static str,
) -> PyResult<Busy> {
    let busy = core(py, conn.busy(call))?;
    reader.pause(py, call)?;
    Ok(busy)
}

/// `await client.start_tls(tls=True, *, starttls=None)`.
pub fn start_tls<'py>(
    c: Ctx<'py>,
    conn: &Arc<AsyncConn>,
    reader: &Arc<Reader>,
    host: &str,
    tls: Option<&Bound<'py, PyAny>>,
    starttls: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = c.lp.py();
    if conn.is_tls() {
        return Err(PyValueError::new_err(
            "start_tls: the connection already speaks TLS",
        ));
    }
    let t = start_tls_arg(py, tls)?;
    let proto = starttls_arg(starttls)?;
    let busy = begin(py, conn, reader, "start_tls")?;
    let host = host.to_string();
    if let Some(p) = proto {
        // The preset's plaintext part exists only in blocking form; the
        // handshake follows on the same thread, under the same deadline.
        let fut = lend(
            &c,
            conn,
            busy,
            move |tc, intr| {
                let deadline = Deadline::after(tc.timeout());
                let r = negotiate(tc, p, deadline, intr)
                    .and_then(|()| tc.start_tls_client(&t, &host, deadline, intr));
                (r, Vec::new())
            },
            |py, ()| Ok(py.None().into_bound(py)),
        )?;
        return close_on_cancel(fut, conn, reader);
    }
    let deadline = conn.timeout().map(|d| tokio::time::Instant::now() + d);
    let inner = conn.clone();
    let fut = c.spawn(async move {
        let guard = CloseUnlessDone::new(&inner);
        let r = inner.start_tls_client(&t, &host, deadline).await;
        guard.done();
        drop(busy);
        r.map(|()| Value::None)
    })?;
    close_on_cancel(fut, conn, reader)
}

/// `await client.run_steps(steps, *, tls=True)`.
pub fn run_steps<'py>(
    c: Ctx<'py>,
    conn: &Arc<AsyncConn>,
    reader: &Arc<Reader>,
    host: &str,
    steps: &Bound<'py, PyAny>,
    tls: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = c.lp.py();
    let (steps, client_tls) = dialogue_args(py, steps, tls)?;
    let busy = begin(py, conn, reader, "run_steps")?;
    let host = host.to_string();
    let fut = lend(
        &c,
        conn,
        busy,
        move |tc, intr| {
            let setup = client_tls.as_ref().map(|t| TlsSetup {
                tls: t,
                host: &host,
            });
            let deadline = Deadline::after(tc.timeout());
            match run_dialogue(tc, &steps, setup.as_ref(), deadline, intr) {
                Err(e) => (Err(e), Vec::new()),
                Ok(Ok(mut f)) => {
                    let rest = std::mem::take(&mut f.rest);
                    (Ok(f.captures), rest)
                }
                Ok(Err(fail)) => (
                    Err(Error::Dialogue {
                        step: fail.step,
                        received: fail.received,
                        reason: fail.reason,
                    }),
                    Vec::new(),
                ),
            }
        },
        |py, captures| match captures {
            Some(cap) => Ok(captures_to_py(py, &cap)?.into_any()),
            None => Ok(py.None().into_bound(py)),
        },
    )?;
    close_on_cancel(fut, conn, reader)
}

/// A connected stdlib socket's fd and timeout, checked as
/// `TcpClient.from_socket` checks it, then detached from the socket.
pub fn adopt_socket(
    py: Python<'_>,
    sock: &Bound<'_, PyAny>,
) -> PyResult<(
    std::net::TcpStream,
    std::net::SocketAddr,
    Option<std::time::Duration>,
)> {
    let (owned, timeout) = args::adopt_stdlib_socket(py, sock)?;
    let stream = std::net::TcpStream::from(owned);
    let r = stream
        .set_nonblocking(true)
        .and_then(|()| stream.peer_addr());
    let peer = r.map_err(|e| to_pyerr(py, Error::io(Phase::Connect, None, e), None))?;
    Ok((stream, peer, timeout))
}
