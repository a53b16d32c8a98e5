//! `TcpClient`'s recv and send calls with their GIL-held fast path
//! (`tcp/inline.rs`): each is tried first, and only when it cannot finish
//! without waiting is the GIL released for the blocking call.

use pyo3::prelude::*;

use crate::error::Result;
use crate::py::blocking::{blocking, core};
use crate::tcp::{Attempt, SendAll, Start, TcpConnection};
use crate::wait::Interrupt;

/// `attempt`'s result, else `rest` run without the GIL, starting as the
/// attempt says (straight to the wait when the socket was empty).
fn inline_or_block<T, F>(py: Python<'_>, attempt: Result<Attempt<T>>, rest: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(Start, &dyn Interrupt) -> Result<T> + Send,
{
    match core(py, attempt)? {
        Attempt::Done(v) => Ok(v),
        a => {
            let start = a.start();
            blocking(py, |intr| rest(start, intr))
        }
    }
}

pub fn send(py: Python<'_>, c: &TcpConnection, data: &[u8]) -> PyResult<usize> {
    inline_or_block(py, c.try_send(data), |_, i| c.send(data, i))
}

pub fn send_all(py: Python<'_>, c: &TcpConnection, data: &[u8]) -> PyResult<()> {
    match core(py, c.try_send_all(data))? {
        SendAll::Done => Ok(()),
        SendAll::Pending(p) => {
            // The write lock goes on being held, by reference, while the
            // rest is sent without the GIL.
            let p = &p;
            blocking(py, |i| c.finish_send_all(p, data, i))
        }
        SendAll::Busy => blocking(py, |i| c.send_all(data, i)),
    }
}

pub fn recv(py: Python<'_>, c: &TcpConnection, n: usize) -> PyResult<Vec<u8>> {
    inline_or_block(py, c.try_recv(n), |st, i| c.recv_from(n, st, i))
}

/// `dst` is called once per attempt: the buffer is the caller's, borrowed
/// anew by the fast path and by the blocking call.
pub fn recv_into<'b>(
    py: Python<'_>,
    c: &TcpConnection,
    dst: impl Fn() -> &'b mut [u8] + Send + Sync,
) -> PyResult<usize> {
    inline_or_block(py, c.try_recv_into(dst()), |st, i| {
        c.recv_into_from(dst(), st, i)
    })
}

pub fn recv_exact(py: Python<'_>, c: &TcpConnection, n: usize) -> PyResult<Vec<u8>> {
    inline_or_block(py, c.try_recv_exact(n), |st, i| c.recv_exact_from(n, st, i))
}

pub fn recv_until(
    py: Python<'_>,
    c: &TcpConnection,
    delim: &[u8],
    max: usize,
) -> PyResult<Vec<u8>> {
    inline_or_block(py, c.try_recv_until(delim, max, false), |st, i| {
        c.recv_until_from(delim, max, st, i)
    })
}

pub fn recv_line(py: Python<'_>, c: &TcpConnection, max: usize) -> PyResult<Vec<u8>> {
    inline_or_block(py, c.try_recv_until(b"\n", max, true), |st, i| {
        c.recv_line_from(max, st, i)
    })
}
