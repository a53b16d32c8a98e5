//! The read side of `AsyncTcpClient`, on the event loop's own thread: the
//! client's fd is watched with `loop.add_reader`, and when it is readable
//! the callback reads what the kernel holds into the client's one read
//! buffer and answers the reads waiting, in order, with the same framing
//! as `TcpClient` (`aio::tcp::AsyncConn::answer`).
//!
//! Measured (benches/aio.py, 1,000 request/response clients, 2 cores,
//! quiet machine): reads run as tokio tasks and handed back through the
//! bridge made 67-77k requests/s against 85k for asyncio streams and 133k
//! for uvloop streams: the hop to a runtime thread and back costs more
//! than the whole Python stream machinery it replaces. On the loop's
//! thread a reply costs one readiness event, one `recv` and one
//! `set_result`.
//!
//! The registration stays while the client is open (no `epoll_ctl` per
//! read); bytes nobody asked for yet are buffered, and reading pauses
//! (the reader is removed) past `PAUSE_AT` buffered bytes, as asyncio's
//! transports pause, and at EOF. A cancelled read is dropped from the
//! queue; what it had received stays buffered. Writes go out inline
//! (`try_send_now`), the rest through the runtime.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::aio::tcp::{AsyncConn, Want};
use crate::error::{Error, Phase, Result as CoreResult};
use crate::py::args::WriteBuf;
use crate::py::errors::to_pyerr;

/// Buffered bytes past which the reader stops reading until asked.
const PAUSE_AT: usize = 1 << 20;

/// A read as the queue keeps it.
#[derive(Clone)]
pub enum OwnedWant {
    Some(usize),
    Exact(usize),
    Until(Vec<u8>, usize),
    Line(usize),
}

impl OwnedWant {
    fn as_want(&self) -> Want<'_> {
        match self {
            OwnedWant::Some(n) => Want::Some(*n),
            OwnedWant::Exact(n) => Want::Exact(*n),
            OwnedWant::Until(d, m) => Want::Until(d, *m),
            OwnedWant::Line(m) => Want::Line(*m),
        }
    }
}

/// What the caller gets for the bytes.
pub enum Kind {
    Bytes,
    /// `recv_into`: copied into this buffer, the count returned.
    Into(Py<PyAny>),
    /// `lines()`: `b""` (EOF) ends the iteration.
    Line,
}

struct Waiting {
    fut: Py<PyAny>,
    want: OwnedWant,
    kind: Kind,
    timer: Option<Py<PyAny>>,
}

struct State {
    queue: VecDeque<Waiting>,
    watching: bool,
    eof: bool,
}

pub struct Reader {
    conn: Arc<AsyncConn>,
    lp: Py<PyAny>,
    st: Mutex<State>,
}

fn convert<'py>(
    py: Python<'py>,
    kind: &Kind,
    r: CoreResult<Vec<u8>>,
) -> PyResult<Bound<'py, PyAny>> {
    let data = r.map_err(|e| to_pyerr(py, e, None))?;
    match kind {
        Kind::Bytes => Ok(PyBytes::new(py, &data).into_any()),
        Kind::Line if data.is_empty() => Err(PyStopAsyncIteration::new_err(())),
        Kind::Line => Ok(PyBytes::new(py, &data).into_any()),
        Kind::Into(target) => {
            let wb = WriteBuf::get("buffer", target.bind(py))?;
            let k = data.len().min(wb.len());
            wb.slice_mut(k).copy_from_slice(&data[..k]);
            Ok(k.into_pyobject(py)?.into_any())
        }
    }
}

fn settle(py: Python<'_>, fut: &Bound<'_, PyAny>, v: PyResult<Bound<'_, PyAny>>) {
    let r = match v {
        Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,)),
        Err(e) => fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),)),
    };
    // Only a closed loop refuses; nobody is waiting then.
    drop(r);
}

fn is_done(py: Python<'_>, fut: &Py<PyAny>) -> bool {
    fut.bind(py)
        .call_method0(intern!(py, "done"))
        .and_then(|v| v.is_truthy())
        .unwrap_or(true)
}

impl Reader {
    pub fn new(conn: Arc<AsyncConn>, lp: Py<PyAny>) -> Arc<Self> {
        Arc::new(Reader {
            conn,
            lp,
            st: Mutex::new(State {
                queue: VecDeque::new(),
                watching: false,
                eof: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watch(self: &Arc<Self>, py: Python<'_>, st: &mut State) -> PyResult<()> {
        if st.watching || st.eof {
            return Ok(());
        }
        let fd = self.conn.fileno();
        if fd < 0 {
            return Err(to_pyerr(py, Error::ClosedSocket, None));
        }
        let cb = Readable {
            reader: self.clone(),
        };
        self.lp
            .bind(py)
            .call_method1(intern!(py, "add_reader"), (fd, cb))?;
        st.watching = true;
        Ok(())
    }

    fn unwatch(&self, py: Python<'_>, st: &mut State) {
        if !st.watching {
            return;
        }
        st.watching = false;
        let fd = self.conn.fileno();
        if fd >= 0 {
            let _ = self
                .lp
                .bind(py)
                .call_method1(intern!(py, "remove_reader"), (fd,));
        }
    }

    /// A read: answered at once from the buffer when it can be, else
    /// queued behind the reads already waiting.
    pub fn read<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        want: OwnedWant,
        kind: Kind,
    ) -> PyResult<Bound<'py, PyAny>> {
        let lp = self.lp.bind(py);
        let mut st = self.lock();
        while st.queue.front().is_some_and(|w| is_done(py, &w.fut)) {
            if let Some(w) = st.queue.pop_front() {
                cancel_timer(py, &w);
            }
        }
        if !self.conn.is_open() {
            return Err(to_pyerr(py, Error::ClosedSocket, None));
        }
        if st.queue.is_empty() {
            if let Some(r) = self.conn.answer(want.as_want(), st.eof) {
                let fut = lp.call_method0(intern!(py, "create_future"))?;
                settle(py, &fut, convert(py, &kind, r));
                return Ok(fut);
            }
        }
        let fut = lp.call_method0(intern!(py, "create_future"))?;
        let timer = match self.conn.timeout() {
            None => None,
            Some(t) => {
                let cb = TimedOut {
                    reader: self.clone(),
                    fut: fut.clone().unbind(),
                };
                Some(
                    lp.call_method1(intern!(py, "call_later"), (t.as_secs_f64(), cb))?
                        .unbind(),
                )
            }
        };
        st.queue.push_back(Waiting {
            fut: fut.clone().unbind(),
            want,
            kind,
            timer,
        });
        self.watch(py, &mut st)?;
        Ok(fut)
    }

    /// The fd is readable: read, then answer the reads waiting.
    fn on_readable(self: &Arc<Self>, py: Python<'_>) {
        let mut st = self.lock();
        match self.conn.fill_now() {
            Ok(eof) => st.eof |= eof,
            Err(e) => {
                self.unwatch(py, &mut st);
                let e = to_pyerr(py, e, None);
                self.fail_all(py, &mut st, |py| e.clone_ref(py));
                return;
            }
        }
        while let Some(front) = st.queue.front() {
            if is_done(py, &front.fut) {
                if let Some(w) = st.queue.pop_front() {
                    cancel_timer(py, &w);
                }
                continue;
            }
            let Some(r) = self.conn.answer(front.want.as_want(), st.eof) else {
                break;
            };
            if let Some(w) = st.queue.pop_front() {
                cancel_timer(py, &w);
                settle(py, w.fut.bind(py), convert(py, &w.kind, r));
            }
        }
        // EOF stays readable forever; past PAUSE_AT nobody is reading.
        if st.eof || (st.queue.is_empty() && self.conn.buffered() >= PAUSE_AT) {
            self.unwatch(py, &mut st);
        }
    }

    fn fail_all(&self, py: Python<'_>, st: &mut State, err: impl Fn(Python<'_>) -> PyErr) {
        for w in st.queue.drain(..) {
            cancel_timer(py, &w);
            if !is_done(py, &w.fut) {
                settle(py, w.fut.bind(py), Err(err(py)));
            }
        }
    }

    /// `fut`'s timeout passed: it fails with TimeoutError, the others wait on.
    fn timed_out(&self, py: Python<'_>, fut: &Py<PyAny>) {
        let mut st = self.lock();
        if let Some(i) = st.queue.iter().position(|w| w.fut.is(fut)) {
            if let Some(w) = st.queue.remove(i) {
                if !is_done(py, &w.fut) {
                    let e = Error::timeout(Phase::Recv, Some(self.conn.peer_addr().to_string()));
                    settle(py, w.fut.bind(py), Err(to_pyerr(py, e, None)));
                }
            }
        }
    }

    /// The client is closing: stop watching, fail the reads waiting.
    pub fn close(&self, py: Python<'_>) {
        let mut st = self.lock();
        self.unwatch(py, &mut st);
        self.fail_all(py, &mut st, |py| to_pyerr(py, Error::ClosedSocket, None));
    }

    /// A read that depends on a write still going out through the runtime
    /// (`request` with a big request): the write failed, so does the read.
    pub fn fail(&self, py: Python<'_>, fut: &Py<PyAny>, e: PyErr) {
        let mut st = self.lock();
        if let Some(i) = st.queue.iter().position(|w| w.fut.is(fut)) {
            if let Some(w) = st.queue.remove(i) {
                cancel_timer(py, &w);
                settle(py, w.fut.bind(py), Err(e));
            }
        }
    }
}

fn cancel_timer(py: Python<'_>, w: &Waiting) {
    if let Some(t) = &w.timer {
        let _ = t.bind(py).call_method0(intern!(py, "cancel"));
    }
}

#[pyclass(module = "socketkit._aio_core", frozen)]
struct Readable {
    reader: Arc<Reader>,
}

#[pymethods]
impl Readable {
    fn __call__(&self, py: Python<'_>) {
        self.reader.on_readable(py);
    }
}

#[pyclass(module = "socketkit._aio_core", frozen)]
struct TimedOut {
    reader: Arc<Reader>,
    fut: Py<PyAny>,
}

#[pymethods]
impl TimedOut {
    fn __call__(&self, py: Python<'_>) {
        self.reader.timed_out(py, &self.fut);
    }
}
