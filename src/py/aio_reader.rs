//! The read side of `AsyncTcpClient`, on the event loop's own thread.
//! Every client fd of a loop sits in one epoll instance per thread
//! ([`Poller`]), and the loop watches only that epoll fd: when it is
//! readable, one callback reads what the kernel holds for each ready
//! client into the client's one read buffer and answers the reads
//! waiting, in order, with the same framing as `TcpClient`
//! (`aio::tcp::AsyncConn::answer`).
//!
//! Measured (1,000 request/response clients against `TcpServer.echo()`,
//! 2 cores, quiet machine, requests/s; asyncio streams ~100k, uvloop
//! streams ~130k):
//! - reads as tokio tasks, results handed back through the bridge: 67k
//!   (the hop to a runtime thread and back costs more than the Python
//!   stream machinery it replaces);
//! - `add_reader` per client, reads on the loop's thread: 109k (131k on
//!   uvloop), once the stream also left tokio's reactor (a second epoll
//!   watching it woke a runtime thread on every packet for nothing);
//! - one epoll for all clients (this): 124k (143k on uvloop): asyncio's
//!   Python-level loop no longer runs a handle per client per reply.
//!
//! A client stays registered while it is open (no `epoll_ctl` per read);
//! bytes nobody asked for yet are buffered, and reading pauses (the fd
//! leaves the epoll) past `PAUSE_AT` buffered bytes, as asyncio's
//! transports pause, and at EOF. A cancelled read is dropped from the
//! queue; what it had received stays buffered. Writes go out inline
//! (`try_send_now`), `request`'s through the outbox (`aio/outbox.rs`,
//! whose eventfd sits in the same epoll set to report failed writes), the
//! rest through the runtime.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::aio;
use crate::aio::outbox::{Out, Outbox};
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
    /// Names the read for a write handed to the outbox (`request`).
    id: u64,
    fut: Py<PyAny>,
    want: OwnedWant,
    kind: Kind,
    timer: Option<Py<PyAny>>,
}

struct State {
    queue: VecDeque<Waiting>,
    watching: bool,
    eof: bool,
    next_id: u64,
}

pub struct Reader {
    conn: Arc<AsyncConn>,
    lp: Py<PyAny>,
    /// `lp.create_future`, looked up once (a lookup through the loop's
    /// class per read otherwise).
    create_future: Py<PyAny>,
    poller: Arc<Poller>,
    token: u64,
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
    pub fn new(py: Python<'_>, conn: Arc<AsyncConn>, lp: Py<PyAny>) -> PyResult<Arc<Self>> {
        let poller = Poller::for_loop(py, lp.bind(py))?;
        let token = poller.next_token();
        let create_future = lp.bind(py).getattr(intern!(py, "create_future"))?.unbind();
        Ok(Arc::new(Reader {
            conn,
            lp,
            create_future,
            poller,
            token,
            st: Mutex::new(State {
                queue: VecDeque::new(),
                watching: false,
                eof: false,
                next_id: 0,
            }),
        }))
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
        self.poller
            .add(fd, self.token, self)
            .map_err(|e| to_pyerr(py, Error::io(Phase::Recv, None, e), None))?;
        st.watching = true;
        Ok(())
    }

    fn unwatch(&self, _py: Python<'_>, st: &mut State) {
        if !st.watching {
            return;
        }
        st.watching = false;
        self.poller.remove(self.conn.fileno(), self.token);
    }

    /// A read: answered at once from the buffer when it can be, else
    /// queued behind the reads already waiting.
    pub fn read<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        want: OwnedWant,
        kind: Kind,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.read_tagged(py, want, kind).map(|(fut, _)| fut)
    }

    /// A read now may be answered at once (bytes or EOF waiting, no read
    /// ahead of it): `request` then sends inline, so that a failed write
    /// raises from the call and leaves those bytes buffered, as before
    /// the outbox.
    pub fn answers_now(&self) -> bool {
        let st = self.lock();
        st.queue.is_empty() && (st.eof || self.conn.buffered() > 0)
    }

    /// `request`'s reply, its write handed to the outbox: a write that
    /// fails there fails this read (`Poller::on_ready`).
    pub fn request<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        want: OwnedWant,
        mut out: Out,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (fut, id) = self.read_tagged(py, want, Kind::Bytes)?;
        if let Some(id) = id {
            out.tag((self.token, id));
        }
        self.poller.outbox.push(out);
        Ok(fut)
    }

    /// [`Reader::read`], with the id of the read when it waits.
    fn read_tagged<'py>(
        self: &Arc<Self>,
        py: Python<'py>,
        want: OwnedWant,
        kind: Kind,
    ) -> PyResult<(Bound<'py, PyAny>, Option<u64>)> {
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
        if let Err(e) = self.conn.not_busy("recv") {
            return Err(to_pyerr(py, e, None));
        }
        if st.queue.is_empty() {
            if let Some(r) = self.conn.answer(want.as_want(), st.eof) {
                let fut = self.create_future.bind(py).call0()?;
                settle(py, &fut, convert(py, &kind, r));
                return Ok((fut, None));
            }
        }
        let fut = self.create_future.bind(py).call0()?;
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
        let id = st.next_id;
        st.next_id += 1;
        st.queue.push_back(Waiting {
            id,
            fut: fut.clone().unbind(),
            want,
            kind,
            timer,
        });
        self.watch(py, &mut st)?;
        Ok((fut, Some(id)))
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

    /// Stop reading for a handshake or an exchange on another thread
    /// (`start_tls`, `run_steps`); the next read watches again. Refused
    /// while reads wait (their bytes would go to the other party).
    pub fn pause(&self, py: Python<'_>, call: &'static str) -> PyResult<()> {
        let mut st = self.lock();
        st.queue.retain(|w| !is_done(py, &w.fut));
        if !st.queue.is_empty() {
            let e = Error::invalid(call, "a read is waiting on this client; await it first");
            return Err(to_pyerr(py, e, None));
        }
        self.unwatch(py, &mut st);
        Ok(())
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
        self.fail_where(py, |w| w.fut.is(fut), e);
    }

    fn fail_where(&self, py: Python<'_>, which: impl Fn(&Waiting) -> bool, e: PyErr) {
        let mut st = self.lock();
        if let Some(i) = st.queue.iter().position(which) {
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

/// One epoll instance per thread holding every client fd of the loop
/// that runs there; the loop watches only the epoll fd. A readiness event
/// of the loop then answers every client that became readable, in one
/// callback: with one `add_reader` per client, asyncio's Python-level
/// loop spent a handle per client per reply.
pub struct Poller {
    epfd: OwnedFd,
    /// `request`'s writes, sent off this thread; its eventfd sits in
    /// `epfd` under [`OUTBOX`].
    outbox: Arc<Outbox>,
    forks: usize,
    lp: Mutex<Option<Py<PyAny>>>,
    readers: Mutex<HashMap<u64, Weak<Reader>>>,
    tokens: AtomicU64,
}

thread_local! {
    static POLLER: RefCell<Option<Arc<Poller>>> = const { RefCell::new(None) };
}

/// Events taken per `epoll_wait`; more are taken in the same callback.
const BATCH: usize = 256;
/// The outbox's token in the epoll set; readers count from 1.
const OUTBOX: u64 = 0;

impl Poller {
    fn new() -> CoreResult<Self> {
        let io = |e| Error::io(Phase::Recv, None, e);
        // SAFETY: epoll_create1 returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor we own.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let outbox = Outbox::new()?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: OUTBOX,
        };
        // SAFETY: a live epoll fd, a live eventfd and a valid event.
        if unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, outbox.fd(), &mut ev) } < 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        Ok(Poller {
            epfd,
            outbox,
            forks: aio::forks(),
            lp: Mutex::new(None),
            readers: Mutex::new(HashMap::new()),
            tokens: AtomicU64::new(1),
        })
    }

    /// This thread's poller, watched by `lp`.
    fn for_loop(py: Python<'_>, lp: &Bound<'_, PyAny>) -> PyResult<Arc<Poller>> {
        let p = POLLER.with(|c| -> PyResult<Arc<Poller>> {
            let mut c = c.borrow_mut();
            if let Some(p) = c.as_ref() {
                if p.forks == aio::forks() {
                    return Ok(p.clone());
                }
            }
            let p = Arc::new(Poller::new().map_err(|e| to_pyerr(py, e, None))?);
            *c = Some(p.clone());
            Ok(p)
        })?;
        let mut cur = p.lp.lock().unwrap_or_else(|e| e.into_inner());
        let same = cur.as_ref().is_some_and(|c| c.as_ptr() == lp.as_ptr());
        if !same {
            if let Some(old) = cur.as_ref() {
                let old = old.bind(py);
                if !old.call_method0("is_closed")?.is_truthy()? {
                    let _ = old.call_method1("remove_reader", (p.epfd.as_raw_fd(),));
                }
            }
            let cb = Ready { poller: p.clone() };
            lp.call_method1(intern!(py, "add_reader"), (p.epfd.as_raw_fd(), cb))?;
            *cur = Some(lp.clone().unbind());
        }
        drop(cur);
        Ok(p)
    }

    /// The live reader registered under `token`, if any.
    fn reader(&self, token: u64) -> Option<Arc<Reader>> {
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token)
            .and_then(Weak::upgrade)
    }

    fn next_token(&self) -> u64 {
        self.tokens.fetch_add(1, Ordering::Relaxed)
    }

    fn add(&self, fd: i32, token: u64, reader: &Arc<Reader>) -> std::io::Result<()> {
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, Arc::downgrade(reader));
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: a live epoll fd, a live socket fd and a valid event.
        if unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn remove(&self, fd: i32, token: u64) {
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token);
        if fd >= 0 {
            // SAFETY: as in `add`; a missing fd is only an error code.
            unsafe {
                libc::epoll_ctl(
                    self.epfd.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                )
            };
        }
    }

    fn on_ready(&self, py: Python<'_>) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            // SAFETY: `events` has room for BATCH entries; timeout 0.
            let n = unsafe {
                libc::epoll_wait(self.epfd.as_raw_fd(), events.as_mut_ptr(), BATCH as i32, 0)
            };
            if n <= 0 {
                return;
            }
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if token == OUTBOX {
                    self.failed_writes(py);
                    continue;
                }
                if let Some(r) = self.reader(token) {
                    r.on_readable(py);
                }
            }
            if (n as usize) < BATCH {
                return;
            }
        }
    }
}

impl Poller {
    /// Writes the outbox could not send: the reads waiting for their
    /// replies fail with the write's error.
    fn failed_writes(&self, py: Python<'_>) {
        for ((token, id), e) in self.outbox.failures() {
            if let Some(r) = self.reader(token) {
                r.fail_where(py, |w| w.id == id, to_pyerr(py, e, None));
            }
        }
    }
}

#[pyclass(module = "socketkit._aio_core", frozen)]
struct Ready {
    poller: Arc<Poller>,
}

#[pymethods]
impl Ready {
    fn __call__(&self, py: Python<'_>) {
        self.poller.on_ready(py);
    }
}
