//! Calls that never wait, for the binding layer to try while it still holds
//! the GIL (issue 16). A thread-per-connection server answering small
//! requests spent most of its extra CPU releasing and taking back the GIL
//! around every recv and send, and on a failed read before each wait. The
//! stdlib tries the syscall first; so does this: bytes already buffered are
//! returned with no syscall, else one nonblocking read or send is tried,
//! and only when that finds nothing does the caller release the GIL and
//! take the blocking path (`Start::Wait`: straight to the wait).
//!
//! Locks are only tried, never waited for: a thread blocked in a read holds
//! the read buffer's lock while it waits without the GIL, and waiting for
//! that lock with the GIL held could deadlock (its interrupt check needs
//! the GIL). A busy lock, or TLS needing the session, means "take the
//! blocking path" (`Attempt::Busy`).

use std::io::{self, Read};
use std::sync::{Arc, MutexGuard};

use socket2::Socket;

use crate::error::{Error, Phase, Result};
use crate::framing::ReadBuffer;
use crate::sock::write_all;
use crate::wait::Interrupt;

use super::stream::{take_delimited, AtEof, Start, TcpConnection};

/// The most one nonblocking send or read may carry with the GIL held: a
/// larger one copies long enough that other Python threads (a sender
/// feeding this reader, say) should run meanwhile, as the stdlib lets them.
const INLINE_MAX: usize = 64 * 1024;

/// What a call that must not wait achieved.
pub enum Attempt<T> {
    Done(T),
    /// The socket had nothing: wait first (`Start::Wait`).
    WouldBlock,
    /// Not tried (another thread holds the lock, TLS, a large send): the
    /// blocking call does all of it (`Start::Read`).
    Busy,
}

impl<T> Attempt<T> {
    /// How the blocking call that follows an unfinished attempt begins.
    pub fn start(&self) -> Start {
        match self {
            Attempt::WouldBlock => Start::Wait,
            _ => Start::Read,
        }
    }
}

/// A `sendall` the socket took only part of: its write lock stays held
/// until `finish_send_all` sends the rest, so no other thread's bytes land
/// in between.
pub struct PendingSend<'a> {
    _w: MutexGuard<'a, ()>,
    s: Arc<Socket>,
    sent: usize,
}

pub enum SendAll<'a> {
    Done,
    Pending(PendingSend<'a>),
    Busy,
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl TcpConnection {
    /// `take` over the buffered bytes (`eof`: the peer has closed), after
    /// at most one nonblocking read when they do not satisfy it yet.
    fn try_read_side<T>(
        &self,
        want: usize,
        mut take: impl FnMut(&mut ReadBuffer, bool) -> Option<Result<T>>,
    ) -> Result<Attempt<T>> {
        let s = self.sock.get()?;
        let Ok(mut rb) = self.rbuf.try_lock() else {
            return Ok(Attempt::Busy);
        };
        if let Some(r) = take(&mut rb, false) {
            return r.map(Attempt::Done);
        }
        if self.is_tls() {
            return Ok(Attempt::Busy);
        }
        let spare = rb.spare(want.min(INLINE_MAX))?;
        let room = spare.len().min(INLINE_MAX);
        let spare = &mut spare[..room];
        match (&*s).read(spare) {
            Ok(0) if !self.sock.is_open() => Err(Error::ClosedSocket),
            Ok(n) => {
                rb.commit(n);
                match take(&mut rb, n == 0) {
                    Some(r) => r.map(Attempt::Done),
                    // A short read emptied the socket: the rest of the
                    // message has yet to come.
                    None if n < room => Ok(Attempt::WouldBlock),
                    None => Ok(Attempt::Busy),
                }
            }
            Err(e) if would_block(&e) => Ok(Attempt::WouldBlock),
            Err(e) => Err(Error::io(Phase::Recv, Some(&self.peer), e)),
        }
    }

    /// `recv(n)` if it need not wait.
    pub fn try_recv(&self, n: usize) -> Result<Attempt<Vec<u8>>> {
        self.try_read_side(n, |rb, eof| {
            (n == 0 || eof || !rb.is_empty()).then(|| Ok(rb.take(n)))
        })
    }

    /// `recv_exact(n)` if it need not wait.
    pub fn try_recv_exact(&self, n: usize) -> Result<Attempt<Vec<u8>>> {
        self.try_read_side(n, |rb, eof| {
            if rb.len() >= n {
                Some(Ok(rb.take(n)))
            } else if eof {
                Some(Err(Error::Closed {
                    partial: rb.take_all(),
                    expected: format!("{n}"),
                }))
            } else {
                None
            }
        })
    }

    /// `recv_until(delim)` (or `recv_line` with `line`) if it need not wait.
    pub fn try_recv_until(
        &self,
        delim: &[u8],
        max_size: usize,
        line: bool,
    ) -> Result<Attempt<Vec<u8>>> {
        if delim.is_empty() {
            return Ok(Attempt::Busy); // the blocking call reports it
        }
        let at_eof = if line {
            AtEof::ReturnRest
        } else {
            AtEof::Raise
        };
        self.try_read_side(0, |rb, eof| match take_delimited(rb, delim, 0, max_size) {
            Some(r) => Some(r),
            None if eof => Some(at_eof.finish(rb, delim)),
            None => None,
        })
    }

    pub fn recv_until_from(
        &self,
        delim: &[u8],
        max_size: usize,
        start: Start,
        intr: &dyn Interrupt,
    ) -> Result<Vec<u8>> {
        self.read_delimited(delim, max_size, AtEof::Raise, start, intr)
    }

    pub fn recv_line_from(
        &self,
        max_size: usize,
        start: Start,
        intr: &dyn Interrupt,
    ) -> Result<Vec<u8>> {
        self.read_delimited(b"\n", max_size, AtEof::ReturnRest, start, intr)
    }

    /// `recv_into(dst)` if it need not wait: buffered bytes, else one read
    /// straight into `dst`.
    pub fn try_recv_into(&self, dst: &mut [u8]) -> Result<Attempt<usize>> {
        let s = self.sock.get()?;
        let Ok(mut rb) = self.rbuf.try_lock() else {
            return Ok(Attempt::Busy);
        };
        if dst.is_empty() {
            return Ok(Attempt::Done(0));
        }
        if !rb.is_empty() {
            return Ok(Attempt::Done(rb.take_into(dst)));
        }
        if self.is_tls() || dst.len() > INLINE_MAX {
            return Ok(Attempt::Busy);
        }
        match (&*s).read(dst) {
            Ok(0) if !self.sock.is_open() => Err(Error::ClosedSocket),
            Ok(n) => Ok(Attempt::Done(n)),
            Err(e) if would_block(&e) => Ok(Attempt::WouldBlock),
            Err(e) => Err(Error::io(Phase::Recv, Some(&self.peer), e)),
        }
    }

    /// `send(data)` if it need not wait.
    pub fn try_send(&self, data: &[u8]) -> Result<Attempt<usize>> {
        if data.len() > INLINE_MAX || self.is_tls() {
            return Ok(Attempt::Busy);
        }
        let s = self.sock.get()?;
        let Ok(_w) = self.wlock.try_lock() else {
            return Ok(Attempt::Busy);
        };
        if data.is_empty() {
            return Ok(Attempt::Done(0));
        }
        match s.send(data) {
            Ok(n) => Ok(Attempt::Done(n)),
            Err(e) if would_block(&e) => Ok(Attempt::WouldBlock),
            Err(e) => Err(Error::io(Phase::Send, Some(&self.peer), e)),
        }
    }

    /// `send_all(data)` as far as the socket takes it without waiting.
    pub fn try_send_all(&self, data: &[u8]) -> Result<SendAll<'_>> {
        if data.len() > INLINE_MAX || self.is_tls() {
            return Ok(SendAll::Busy);
        }
        let s = self.sock.get()?;
        let Ok(w) = self.wlock.try_lock() else {
            return Ok(SendAll::Busy);
        };
        let mut sent = 0;
        while sent < data.len() {
            match s.send(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if would_block(&e) => {
                    return Ok(SendAll::Pending(PendingSend { _w: w, s, sent }))
                }
                Err(e) => {
                    return Err(Error::SendAll {
                        bytes_sent: sent,
                        source: Box::new(Error::io(Phase::Send, Some(&self.peer), e)),
                    })
                }
            }
        }
        Ok(SendAll::Done)
    }

    /// The rest of a `try_send_all`, waiting as needed; a failure counts
    /// the bytes the attempt sent too.
    pub fn finish_send_all(
        &self,
        p: &PendingSend<'_>,
        data: &[u8],
        intr: &dyn Interrupt,
    ) -> Result<()> {
        match write_all(
            &p.s,
            &data[p.sent..],
            self.timeout.deadline(),
            intr,
            Some(&self.peer),
        ) {
            Err(Error::SendAll { bytes_sent, source }) => Err(Error::SendAll {
                bytes_sent: p.sent + bytes_sent,
                source,
            }),
            r => r,
        }
    }
}
