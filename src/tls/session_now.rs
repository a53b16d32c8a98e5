//! `TlsSession`'s steps without waiting, for callers that wait by themselves
//! (`socketkit.aio` on tokio readiness): a child of `session.rs`, so it uses
//! the same state and steps as the blocking forms.

use std::io::Write;

use socket2::Socket;

use super::{lock, Step, TlsSession};
use crate::error::{Error, Phase, Result, TlsFailure};

impl TlsSession {
    /// The handshake as far as it goes without waiting (for callers that
    /// wait by themselves: `socketkit.aio`): `None` once it is finished and
    /// everything it queued is sent, else the poll(2) events to wait for.
    pub fn handshake_now(&self, sock: &Socket) -> Result<Option<libc::c_short>> {
        loop {
            match self.handshake_step(sock)? {
                None => return Ok(None),
                Some(Step::Again) => {}
                Some(Step::Wait(events)) => return Ok(Some(events)),
            }
        }
    }

    /// Decrypted bytes into `buf` without waiting: `Some(n)` (0 at EOF),
    /// `None` when nothing more comes until the socket is readable.
    pub fn read_now(&self, sock: &Socket, buf: &mut [u8]) -> Result<Option<usize>> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        loop {
            match self.read_step(sock, buf)? {
                Ok(n) => return Ok(Some(n)),
                Err(Step::Again) => {}
                Err(Step::Wait(_)) => return Ok(None),
            }
        }
    }

    /// Encrypt what rustls takes of `data` and send what the socket takes,
    /// without waiting: the bytes taken, and whether nothing is left queued
    /// (`false`: wait until writable and call again; `data` empty flushes).
    pub fn write_now(&self, sock: &Socket, data: &[u8]) -> Result<(usize, bool)> {
        let mut st = lock(&self.state);
        self.process(&mut st, sock)?;
        let mut taken = 0;
        loop {
            let n = st
                .conn
                .writer()
                .write(&data[taken..])
                .map_err(|e| self.io_error(Phase::Send, e))?;
            taken += n;
            let queued = st.conn.wants_write();
            if !st.push(sock).map_err(|e| self.io_error(Phase::Send, e))? {
                return Ok((taken, false));
            }
            if taken == data.len() {
                return Ok((taken, true));
            }
            if n == 0 && !queued {
                return Err(Error::tls(
                    self.peer.as_ref(),
                    TlsFailure::Protocol("the connection can no longer send".into()),
                ));
            }
        }
    }

    /// Queue a close_notify; `write_now(sock, &[])` sends it.
    pub fn queue_close_notify(&self) {
        lock(&self.state).conn.send_close_notify();
    }
}
