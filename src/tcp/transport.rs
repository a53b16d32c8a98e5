//! The byte transport under `TcpConnection`: the socket itself, or a TLS
//! session over it once `start_tls_client` / `start_tls_server` ran. Every
//! recv/send method of the stream goes through `read` / `write_*` here, so
//! framing, timeouts, Ctrl-C and close-from-another-thread behave the same
//! with and without TLS (the session waits in the same interruptible slices,
//! `tls/session.rs`).

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use socket2::Socket;

use crate::error::{Error, Phase, Result, TlsFailure};
use crate::sock::{read_some, write_all, write_some};
use crate::tls::{ClientTls, ServerTls, TlsInfo, TlsSession};
use crate::wait::{wait_fd, Deadline, Interrupt};

use super::stream::{lock, TcpConnection};

/// How much of a file one step of the TLS `sendfile` fallback reads.
const SENDFILE_CHUNK: usize = 64 * 1024;

impl TcpConnection {
    /// Upgrade to TLS as the client (right after connect, or STARTTLS after
    /// a plaintext exchange); bytes already buffered are handed to the
    /// session. `host` is the SNI and the name verified unless the config
    /// sets `server_hostname` (an IP literal: no SNI, IP SANs checked).
    pub fn start_tls_client(
        &self,
        tls: &ClientTls,
        host: &str,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<()> {
        self.start_tls(deadline, intr, |early| {
            TlsSession::client(tls, host, Some(self.peer), early)
        })
    }

    /// Upgrade to TLS as the server (an accepted connection).
    pub fn start_tls_server(
        &self,
        tls: &ServerTls,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<()> {
        self.start_tls(deadline, intr, |early| {
            TlsSession::server(tls, Some(self.peer), early)
        })
    }

    fn start_tls(
        &self,
        deadline: Deadline,
        intr: &dyn Interrupt,
        make: impl FnOnce(Vec<u8>) -> Result<TlsSession>,
    ) -> Result<()> {
        let s = self.sock.get()?;
        // Both locks, reader's first (the order every path keeps): no
        // plaintext read or write may slip in between the buffered bytes
        // moving to the session and the session taking over.
        let mut rb = lock(&self.rbuf);
        let _w = lock(&self.wlock);
        if self.is_tls() {
            return Err(Error::invalid(
                "start_tls",
                "the connection already speaks TLS",
            ));
        }
        let session = Arc::new(make(rb.take_all())?);
        let _ = self.tls.set(session.clone());
        drop(rb);
        session
            .handshake(&s, deadline, intr)
            .map_err(|e| self.woken(e))
    }

    pub fn is_tls(&self) -> bool {
        self.tls.get().is_some()
    }

    /// What the TLS handshake agreed on; `None` on a plain connection (or
    /// before/after a failed handshake).
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.tls.get().and_then(|t| t.info())
    }

    /// A failure caused by `close()` from another thread (its shutdown looks
    /// like the peer closing) is reported as the closed socket it is.
    fn woken(&self, e: Error) -> Error {
        match e {
            Error::Tls {
                failure: TlsFailure::Closed,
                ..
            } if !self.sock.is_open() => Error::ClosedSocket,
            e => e,
        }
    }

    /// One read; 0 at EOF. When `close()` ran in another thread while this
    /// call waited, its shutdown looks like EOF: report the closed socket
    /// instead, so the woken call fails rather than returning b"".
    pub(super) fn read(
        &self,
        s: &Socket,
        buf: &mut [u8],
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        let n = match self.tls.get() {
            Some(t) => t.read(s, buf, deadline, intr).map_err(|e| self.woken(e))?,
            None => read_some(s, buf, deadline, intr, self.peer())?,
        };
        if n == 0 && !buf.is_empty() && !self.sock.is_open() {
            return Err(Error::ClosedSocket);
        }
        Ok(n)
    }

    /// One send. Under TLS all of `data` is encrypted and sent (a record
    /// cannot be half taken); a failure after some of it went out reports
    /// the count, as a short plain send would.
    pub(super) fn write_some(
        &self,
        s: &Socket,
        data: &[u8],
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        match self.tls.get() {
            Some(t) => match t.write_all(s, data, deadline, intr) {
                Ok(()) => Ok(data.len()),
                Err(Error::SendAll { bytes_sent, .. }) if bytes_sent > 0 => Ok(bytes_sent),
                Err(Error::SendAll { source, .. }) => Err(self.woken(*source)),
                Err(e) => Err(self.woken(e)),
            },
            None => write_some(s, data, deadline, intr, self.peer()),
        }
    }

    /// All of `data`; on failure the error says how many bytes went out.
    pub(super) fn write_all(
        &self,
        s: &Socket,
        data: &[u8],
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<()> {
        match self.tls.get() {
            Some(t) => t.write_all(s, data, deadline, intr),
            None => write_all(s, data, deadline, intr, self.peer()),
        }
    }

    /// Send `count` bytes (all to EOF when `None`) of the file `in_fd` from
    /// `offset`: zero-copy via sendfile(2) on a plain connection; under TLS
    /// the bytes must be encrypted here, so they are read and written in
    /// chunks. Returns the bytes sent.
    pub fn sendfile(
        &self,
        in_fd: RawFd,
        offset: u64,
        count: Option<u64>,
        intr: &dyn Interrupt,
    ) -> Result<u64> {
        let s = self.sock.get()?;
        let _w = lock(&self.wlock);
        let deadline = self.timeout.deadline();
        match self.tls.get() {
            Some(t) => self.sendfile_tls(t, &s, in_fd, offset, count, deadline, intr),
            None => self.sendfile_plain(&s, in_fd, offset, count, deadline, intr),
        }
    }

    fn sendfile_plain(
        &self,
        s: &Socket,
        in_fd: RawFd,
        offset: u64,
        count: Option<u64>,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<u64> {
        let mut off = offset as libc::off_t;
        let mut sent: u64 = 0;
        loop {
            let left = match count {
                Some(c) if sent >= c => break,
                Some(c) => (c - sent).min(1 << 30),
                None => 1 << 30,
            };
            // SAFETY: both fds are open for the duration; off is a valid out-pointer.
            let n = unsafe { libc::sendfile(s.as_raw_fd(), in_fd, &mut off, left as usize) };
            if n > 0 {
                sent += n as u64;
                continue;
            }
            if n == 0 {
                break; // end of file
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => {
                    if !wait_fd(s.as_raw_fd(), libc::POLLOUT, deadline, intr)? {
                        return Err(Error::SendAll {
                            bytes_sent: sent as usize,
                            source: Box::new(Error::timeout(
                                Phase::Send,
                                Some(self.peer.to_string()),
                            )),
                        });
                    }
                }
                io::ErrorKind::Interrupted => intr.check()?,
                _ => {
                    return Err(Error::SendAll {
                        bytes_sent: sent as usize,
                        source: Box::new(Error::io(Phase::Send, self.peer(), e)),
                    })
                }
            }
        }
        Ok(sent)
    }

    #[allow(clippy::too_many_arguments)]
    fn sendfile_tls(
        &self,
        t: &TlsSession,
        s: &Socket,
        in_fd: RawFd,
        offset: u64,
        count: Option<u64>,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<u64> {
        let mut buf = vec![0u8; SENDFILE_CHUNK];
        let mut sent: u64 = 0;
        loop {
            let want = match count {
                Some(c) if sent >= c => break,
                Some(c) => (c - sent).min(SENDFILE_CHUNK as u64) as usize,
                None => SENDFILE_CHUNK,
            };
            // pread leaves the file position alone, as sendfile(2) does.
            // SAFETY: buf holds at least `want` writable bytes; in_fd is the caller's open fd.
            let n = unsafe {
                libc::pread(
                    in_fd,
                    buf.as_mut_ptr().cast(),
                    want,
                    (offset + sent) as libc::off_t,
                )
            };
            if n == 0 {
                break; // end of file
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    intr.check()?;
                    continue;
                }
                return Err(Error::SendAll {
                    bytes_sent: sent as usize,
                    source: Box::new(Error::io(Phase::Send, None, e)),
                });
            }
            match t.write_all(s, &buf[..n as usize], deadline, intr) {
                Ok(()) => sent += n as u64,
                Err(Error::SendAll { bytes_sent, source }) => {
                    return Err(Error::SendAll {
                        bytes_sent: sent as usize + bytes_sent,
                        source: Box::new(self.woken(*source)),
                    })
                }
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) => {
                    return Err(Error::SendAll {
                        bytes_sent: sent as usize,
                        source: Box::new(self.woken(e)),
                    })
                }
            }
        }
        Ok(sent)
    }

    /// Shut down one or both directions. Under TLS, shutting down writing
    /// sends a close_notify first, so the peer sees a clean end of the TLS
    /// stream rather than a truncation.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.shutdown_interruptible(how, &crate::wait::NoInterrupt)
    }

    /// `shutdown`, with the close_notify's wait (a full send buffer, bounded
    /// by the timeout) answering Ctrl-C.
    pub fn shutdown_interruptible(&self, how: Shutdown, intr: &dyn Interrupt) -> Result<()> {
        let s = self.sock.get()?;
        if let (Some(t), Shutdown::Write | Shutdown::Both) = (self.tls.get(), how) {
            if !t.is_handshaking() {
                let _w = lock(&self.wlock);
                t.send_close_notify(&s, self.timeout.deadline(), intr)
                    .map_err(|e| self.woken(e))?;
            }
        }
        match s.shutdown(how) {
            Ok(()) => Ok(()),
            // Already shut down by the peer: nothing left to do.
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            Err(e) => Err(Error::io(Phase::Send, self.peer(), e)),
        }
    }
}
