//! TLS for `AsyncConn`: the core's own `TlsSession` (the same rustls
//! connection handling as `TcpClient`), driven through its nonblocking
//! steps (`handshake_now`, `read_now`, `write_now`) with the waits as
//! tokio readiness futures instead of `wait_fd`. Reads still happen on the
//! event loop's thread (`fill_tls_now`, called by `py/aio_reader.rs`);
//! the handshake and writes that must wait run on the runtime.
//!
//! Exchanges the core only has in blocking form (a STARTTLS preset's
//! plaintext part, a `run_steps` dialogue) borrow the socket: [`AsyncConn::lend`]
//! hands a duplicate of the fd, the buffered bytes and the TLS session to
//! a blocking `TcpConnection` on a helper thread, and
//! [`AsyncConn::restore`] takes back what is left. That keeps one copy of
//! each protocol's logic; the price is a thread for the exchange, as the
//! aio probes pay.
//!
//! While a handshake or a lent exchange runs the connection is `busy`:
//! a read or write started meanwhile fails with a ValueError naming the
//! call, rather than stealing handshake bytes or sending plaintext
//! between TLS records.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use socket2::{SockRef, Socket};
use tokio::io::Interest;
use tokio::time::Instant;

use crate::error::{Error, Phase, Result};
use crate::framing::ReadBuffer;
use crate::tcp::TcpConnection;
use crate::tls::{ClientTls, TlsInfo, TlsSession};

use super::tcp::AsyncConn;

/// Marks the connection busy until dropped (see the module docs).
pub struct Busy(Arc<AsyncConn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// Closes the connection when dropped armed: a cancelled handshake or
/// exchange leaves it in no state a caller could continue from.
pub struct CloseUnlessDone(Option<Arc<AsyncConn>>);

impl CloseUnlessDone {
    pub fn new(conn: &Arc<AsyncConn>) -> Self {
        CloseUnlessDone(Some(conn.clone()))
    }

    pub fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for CloseUnlessDone {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.close();
        }
    }
}

fn interest(events: libc::c_short) -> Interest {
    if events & libc::POLLOUT != 0 {
        Interest::WRITABLE
    } else {
        Interest::READABLE
    }
}

impl AsyncConn {
    pub fn is_tls(&self) -> bool {
        self.tls.get().is_some()
    }

    /// What the handshake agreed on; `None` on a plain connection (or
    /// while the handshake runs).
    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.tls.get().and_then(|t| t.info())
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// `Err` naming `call` while a handshake or lent exchange runs.
    pub fn not_busy(&self, call: &'static str) -> Result<()> {
        if self.is_busy() {
            return Err(Error::invalid(
                call,
                "a start_tls or run_steps is in progress on this client; await it first",
            ));
        }
        Ok(())
    }

    /// Mark the connection busy (see the module docs) for `call`.
    pub fn busy(self: &Arc<Self>, call: &'static str) -> Result<Busy> {
        if self
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::invalid(
                call,
                "a start_tls or run_steps is in progress on this client; await it first",
            ));
        }
        Ok(Busy(self.clone()))
    }

    /// Upgrade to TLS as the client (right after connect, or STARTTLS
    /// once the protocol said so) within `deadline`: the bytes already
    /// buffered go to the session, as `TcpConnection::start_tls_client`
    /// does. The caller marked the connection busy and stopped the event
    /// loop's reader.
    pub async fn start_tls_client(
        &self,
        tls: &ClientTls,
        host: &str,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let s = self.get()?;
        let shut = self.shut.notified();
        tokio::pin!(shut);
        shut.as_mut().enable();
        if !self.is_open() {
            return Err(Error::ClosedSocket);
        }
        let mut rb = self.rbuf.lock().await;
        let _w = self.wlock.lock().await;
        if self.is_tls() {
            return Err(Error::invalid(
                "start_tls",
                "the connection already speaks TLS",
            ));
        }
        let session = Arc::new(TlsSession::client(
            tls,
            host,
            Some(self.peer),
            rb.take_all(),
        )?);
        let _ = self.tls.set(session.clone());
        let work = async {
            while let Some(events) = session.handshake_now(&SockRef::from(&*s))? {
                Self::ready(&s, interest(events))
                    .await
                    .map_err(|e| Error::io(Phase::Tls, Some(&self.peer), e))?;
            }
            // Application data that came with the handshake's last flight
            // is decrypted now: the socket may never be readable again for
            // it, and the loop's reader waits on the socket.
            Self::fill_tls_now(&session, &s, &mut rb).map(|_| ())
        };
        let timed = async {
            match deadline {
                None => work.await,
                Some(d) => match tokio::time::timeout_at(d, work).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::timeout(Phase::Tls, Some(self.peer.to_string()))),
                },
            }
        };
        tokio::select! {
            biased;
            r = timed => r,
            _ = shut => Err(Error::ClosedSocket),
        }
    }

    /// Decrypt what has arrived into `rb`, without waiting; `Ok(true)` at
    /// EOF. Drains rustls too: plaintext left inside it would never make
    /// the socket readable.
    pub(super) fn fill_tls_now(t: &TlsSession, s: &TcpStream, rb: &mut ReadBuffer) -> Result<bool> {
        let sock = SockRef::from(s);
        loop {
            let spare = rb.spare(0)?;
            match t.read_now(&sock, spare)? {
                Some(0) => return Ok(true),
                Some(n) => rb.commit(n),
                None => return Ok(false),
            }
        }
    }

    /// Encrypt and send `data` from `*sent` on, waiting while the socket
    /// is full; `*sent` counts the bytes the session took.
    pub(super) async fn tls_send_all(
        &self,
        t: &TlsSession,
        s: &TcpStream,
        data: &[u8],
        sent: &mut usize,
    ) -> Result<()> {
        loop {
            let (n, flushed) = t.write_now(&SockRef::from(s), &data[*sent..])?;
            *sent += n;
            if flushed && *sent == data.len() {
                return Ok(());
            }
            if !flushed {
                Self::ready(s, Interest::WRITABLE)
                    .await
                    .map_err(|e| Error::io(Phase::Send, Some(&self.peer), e))?;
            }
        }
    }

    /// Send a close_notify before a shutdown of the write side; a socket
    /// too full to take it now is an error rather than a wait (shutdown
    /// is not awaitable).
    pub(super) fn close_notify(&self, t: &TlsSession, s: &TcpStream) -> Result<()> {
        if t.is_handshaking() {
            return Ok(());
        }
        let _w = self
            .wlock
            .try_lock()
            .map_err(|_| Error::invalid("shutdown", "a send is in flight; await it first"))?;
        t.queue_close_notify();
        match t.write_now(&SockRef::from(s), &[])? {
            (_, true) => Ok(()),
            (_, false) => Err(Error::invalid(
                "shutdown",
                "the send buffer is full, the TLS close_notify could not go out; \
                 await the pending sends first",
            )),
        }
    }

    /// The socket (a duplicate of its fd), the buffered bytes and the TLS
    /// session, as a blocking `TcpConnection` for a helper thread. The
    /// caller marked the connection busy and stopped the loop's reader.
    pub fn lend(&self) -> Result<TcpConnection> {
        let s = self.get()?;
        // Its bytes would go out after the lent exchange's.
        if self.writes.load(Ordering::Acquire) > 0 {
            return Err(Error::invalid(
                "run_steps",
                "a send is in flight; await it first",
            ));
        }
        let dup = s
            .try_clone()
            .map_err(|e| Error::io(Phase::Connect, Some(&self.peer), e))?;
        let mut rb = self
            .rbuf
            .try_lock()
            .map_err(|_| Error::invalid("run_steps", "a read is in flight"))?;
        let buffered = rb.take_all();
        TcpConnection::lent(
            Socket::from(dup),
            self.peer,
            self.timeout(),
            &buffered,
            self.tls.get().cloned(),
        )
    }

    /// Take back a lent connection: `first` (bytes a dialogue had read
    /// past its last match), then what it left buffered, and the TLS
    /// session it started, if any.
    pub fn restore(&self, conn: TcpConnection, first: &[u8]) -> Result<()> {
        let (rest, tls) = conn.give_back();
        if let Some(t) = tls {
            let _ = self.tls.set(t);
        }
        let mut rb = self
            .rbuf
            .try_lock()
            .map_err(|_| Error::invalid("run_steps", "a read is in flight"))?;
        rb.extend_from_slice(first)?;
        rb.extend_from_slice(&rest)?;
        if let Some(t) = self.tls.get() {
            // Plaintext the blocking reads left inside rustls would never
            // make the socket readable for the loop's reader: take it now.
            Self::fill_tls_now(t, &*self.get()?, &mut rb)?;
        }
        Ok(())
    }

    /// Hand the connection over as a std stream (`detach`): refused under
    /// TLS (the fd cannot carry the session), with bytes still buffered
    /// (they would be lost) or a call in flight. Closed after.
    pub fn detach(&self) -> Result<TcpStream> {
        if self.is_tls() {
            return Err(Error::invalid(
                "detach",
                "refused on a TLS connection: the TLS session cannot be handed over with the socket",
            ));
        }
        self.not_busy("detach")?;
        let pending = self.rbuf.try_lock().map_or(1, |rb| rb.len());
        if pending > 0 {
            return Err(Error::invalid(
                "detach",
                format!("{pending} bytes already received are still buffered (or a read is in flight); read them first"),
            ));
        }
        let s = self.get()?;
        // A write in the outbox (`aio/outbox.rs`) holds no stream yet.
        if Arc::strong_count(&s) > 2 || self.writes.load(Ordering::Acquire) > 0 {
            return Err(Error::invalid(
                "detach",
                "a send is in flight; await it first",
            ));
        }
        drop(s);
        let s = self.take_stream().ok_or(Error::ClosedSocket)?;
        Arc::try_unwrap(s)
            .map_err(|_| Error::invalid("detach", "a send is in flight; await it first"))
    }
}

impl AsyncConn {
    /// The kernel's view of the connection (Linux TCP_INFO).
    pub fn tcp_info(&self) -> Result<crate::tcp::TcpInfo> {
        let s = self.get()?;
        crate::tcp::socket_tcp_info(&SockRef::from(&*s))
    }
}
