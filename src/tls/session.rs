//! `TlsSession`: a TLS connection over a connected nonblocking socket,
//! driven by hand the way rustls's `tlsclient-mio` example drives it
//! (`read_tls` / `process_new_packets` / `write_tls`), so that every wait is
//! socketkit's own sliced `wait_fd` with a `Deadline` and an `Interrupt`:
//! Ctrl-C and `close()` from another thread work under TLS as without it.
//!
//! Full duplex: rustls's connection sits behind a mutex that is held only
//! for nonblocking steps, never across poll(2), so one thread can block in
//! `read` while another writes. Readers queue on one lock and writers on
//! another (as `TcpConnection` does), and the handshake takes both.
//!
//! The session does not own the socket: each call is handed the one the
//! caller holds (`TcpConnection` keeps it in its `SockHandle`, whose
//! `close()` shuts it down to wake a blocked call here).

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use socket2::Socket;

use crate::error::{Error, Phase, Result, TlsFailure};
use crate::wait::{wait_fd, Deadline, Interrupt};

use super::certinfo::CertInfo;
use super::context::{ClientTls, ServerTls};
use super::info::{cipher_name, failure_of, version_name, TlsInfo};
use super::spin::{spin_until_readable, STREAMING};
use super::verify::VerifyRecord;

// The non-waiting forms (aio) live next door: this file stays under 600 lines.
#[path = "session_now.rs"]
mod now;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes with MSG_NOSIGNAL: a peer that went away is EPIPE, not SIGPIPE
/// (which would kill a host process that has not ignored it).
struct NoSigPipe<'a>(&'a Socket);

impl Write for NoSigPipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send_with_flags(buf, libc::MSG_NOSIGNAL)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Ciphertext one socket read takes at least: a whole record (16 KiB of
/// plaintext plus its overhead), so a record never needs two reads.
const MIN_READ: usize = 16 * 1024 + 512;
/// ... and at most, whatever the caller asked for (memory per connection).
const MAX_READ: usize = 256 * 1024;
/// A write's first record goes out alone, as soon as it is encrypted, so
/// the peer starts on it while the rest is encrypted; the rest goes in
/// writevs of up to rustls's 64 KiB queue (four records). Encrypting a
/// whole 256 KiB `sendall` before the first byte leaves would hold an
/// echoing peer idle for as long (one record: ~4 us; 256 KiB: ~65 us).
const FIRST_SEND: usize = 16 * 1024;

/// What rustls holds, behind the session's mutex.
struct State {
    conn: rustls::Connection,
    /// Ciphertext read from the socket (or already read when TLS started:
    /// STARTTLS) that rustls has not taken yet. rustls's own `read_tls`
    /// reads at most 4 KiB per system call; one `recv` here takes all the
    /// kernel has (up to what the caller asked for), and rustls is fed from
    /// memory. Freed once drained: an idle connection holds none.
    inbuf: Vec<u8>,
    in_pos: usize,
}

/// How a nonblocking step ended when it could not finish.
enum Step {
    /// Wait until the socket is readable / writable, then try again.
    Wait(libc::c_short),
    /// Try again at once (progress was made).
    Again,
}

impl State {
    fn pending_in(&self) -> usize {
        self.inbuf.len() - self.in_pos
    }

    /// Give rustls buffered ciphertext, decrypting as it goes, until none
    /// is left or `plaintext_max` decrypted bytes wait to be read. Returns
    /// the bytes taken.
    fn feed(&mut self, plaintext_max: usize) -> std::result::Result<usize, rustls::Error> {
        let mut taken = 0;
        while self.in_pos < self.inbuf.len() {
            let mut rest = &self.inbuf[self.in_pos..];
            // Refused when its plaintext buffer is full (the reader has
            // not taken it yet) or after a close_notify: the rest waits.
            match self.conn.read_tls(&mut rest) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.in_pos += n;
                    taken += n;
                }
            }
            if self.conn.process_new_packets()?.plaintext_bytes_to_read() >= plaintext_max {
                break;
            }
        }
        if self.in_pos == self.inbuf.len() {
            self.inbuf = Vec::new();
            self.in_pos = 0;
        }
        Ok(taken)
    }

    /// Read ciphertext from the socket (one `recv`, up to `want` bytes,
    /// at least a record's worth) and hand it to rustls. `Ok(0)` at EOF,
    /// which rustls is told of.
    fn pull(&mut self, sock: &Socket, want: usize) -> io::Result<usize> {
        if self.pending_in() > 0 {
            // Left over because rustls would not take it: it will not now.
            let mut rest = &self.inbuf[self.in_pos..];
            let n = self.conn.read_tls(&mut rest)?;
            self.in_pos += n;
            return Ok(n);
        }
        let size = want.clamp(MIN_READ, MAX_READ);
        let mut buf = Vec::with_capacity(size);
        let n = sock.recv(&mut buf.spare_capacity_mut()[..size])?;
        if n == 0 {
            return self.conn.read_tls(&mut &[][..]);
        }
        // SAFETY: recv initialised the first n bytes of the spare capacity.
        unsafe { buf.set_len(n) };
        self.inbuf = buf;
        self.in_pos = 0;
        let mut rest = &self.inbuf[..];
        let took = self.conn.read_tls(&mut rest)?;
        self.in_pos = took;
        Ok(n)
    }

    /// Send what rustls has queued; `Ok(true)` once all of it is out,
    /// `Ok(false)` when the socket is full.
    fn push(&mut self, sock: &Socket) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut NoSigPipe(sock)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// One TLS connection, client or server side.
pub struct TlsSession {
    state: Mutex<State>,
    /// Readers queue here; it holds when the last read returned data.
    rlock: Mutex<Option<Instant>>,
    wlock: Mutex<()>,
    /// Client side: the verifier's outcome.
    record: Option<Arc<VerifyRecord>>,
    /// Server side: client certificates were required.
    client_auth: bool,
    peer: Option<SocketAddr>,
    info: OnceLock<TlsInfo>,
}

// The binding shares one session between threads (a frozen pyclass).
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<TlsSession>();
};

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("peer", &self.peer)
            .field("client", &self.record.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A client session to `host` (the SNI and the name verified, unless
    /// the config sets `server_hostname`). `early` holds bytes already read
    /// from the socket (STARTTLS), empty otherwise.
    pub fn client(
        tls: &ClientTls,
        host: &str,
        peer: Option<SocketAddr>,
        early: Vec<u8>,
    ) -> Result<TlsSession> {
        let (conn, record) = tls.connection(host)?;
        Ok(Self::new(conn.into(), Some(record), false, peer, early))
    }

    /// A server session for an accepted connection.
    pub fn server(tls: &ServerTls, peer: Option<SocketAddr>, early: Vec<u8>) -> Result<TlsSession> {
        let conn = tls.connection()?;
        Ok(Self::new(
            conn.into(),
            None,
            tls.requires_client_cert(),
            peer,
            early,
        ))
    }

    fn new(
        conn: rustls::Connection,
        record: Option<Arc<VerifyRecord>>,
        client_auth: bool,
        peer: Option<SocketAddr>,
        early: Vec<u8>,
    ) -> TlsSession {
        TlsSession {
            state: Mutex::new(State {
                conn,
                inbuf: early,
                in_pos: 0,
            }),
            rlock: Mutex::new(None),
            wlock: Mutex::new(()),
            record,
            client_auth,
            peer,
            info: OnceLock::new(),
        }
    }

    pub fn is_handshaking(&self) -> bool {
        lock(&self.state).conn.is_handshaking()
    }

    fn tls_error(&self, e: &rustls::Error) -> Error {
        let recorded = self.record.as_ref().and_then(|r| r.outcome().1);
        Error::tls(self.peer.as_ref(), failure_of(e, recorded))
    }

    fn io_error(&self, phase: Phase, e: io::Error) -> Error {
        Error::io(phase, self.peer.as_ref(), e)
    }

    /// Feed what arrived to rustls; on a TLS error, send its alert if the
    /// socket takes it at once, and report the error.
    fn process(&self, st: &mut State, sock: &Socket) -> Result<()> {
        if let Err(e) = st.conn.process_new_packets() {
            let _ = st.push(sock);
            return Err(self.tls_error(&e));
        }
        Ok(())
    }

    /// Run the handshake to its end within `deadline`. A no-op once done.
    pub fn handshake(&self, sock: &Socket, deadline: Deadline, intr: &dyn Interrupt) -> Result<()> {
        // Done already: return without queueing behind a blocked reader.
        if !self.is_handshaking() {
            return Ok(());
        }
        let _r = lock(&self.rlock);
        let _w = lock(&self.wlock);
        loop {
            let step = self.handshake_step(sock)?;
            match step {
                None => return Ok(()),
                Some(Step::Again) => continue,
                Some(Step::Wait(events)) => {
                    if !wait_fd(sock.as_raw_fd(), events, deadline, intr)? {
                        return Err(Error::timeout(Phase::Tls, self.peer.map(|p| p.to_string())));
                    }
                }
            }
        }
    }

    /// One nonblocking round of the handshake; `None` when it is finished
    /// and everything it queued is sent.
    fn handshake_step(&self, sock: &Socket) -> Result<Option<Step>> {
        let mut st = lock(&self.state);
        // A handshake that already failed says so at once, not after a wait.
        self.process(&mut st, sock)?;
        if !st.push(sock).map_err(|e| self.io_error(Phase::Tls, e))? {
            return Ok(Some(Step::Wait(libc::POLLOUT)));
        }
        if !st.conn.is_handshaking() {
            return Ok(None);
        }
        match st.pull(sock, MIN_READ) {
            Ok(0) => {
                // What arrived before the close may hold the peer's alert,
                // or the last of its handshake (then reads will see EOF).
                self.process(&mut st, sock)?;
                if st.conn.is_handshaking() {
                    return Err(Error::tls(self.peer.as_ref(), TlsFailure::Closed));
                }
                Ok(Some(Step::Again))
            }
            Ok(_) => {
                self.process(&mut st, sock)?;
                Ok(Some(Step::Again))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Some(Step::Wait(libc::POLLIN))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Some(Step::Again)),
            Err(e) => Err(self.io_error(Phase::Tls, e)),
        }
    }

    /// Read decrypted bytes into `buf`; 0 at EOF: a close_notify, or the
    /// peer closing without one (Python's `suppress_ragged_eofs=True`).
    /// Returns as soon as some bytes are there, with all that arrived
    /// (up to `buf.len()`) rather than one record.
    pub fn read(
        &self,
        sock: &Socket,
        buf: &mut [u8],
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.handshake(sock, deadline, intr)?;
        let mut last = lock(&self.rlock);
        loop {
            match self.read_step(sock, buf)? {
                Ok(n) => {
                    *last = Some(Instant::now());
                    return Ok(n);
                }
                Err(Step::Again) => intr.check()?,
                Err(Step::Wait(events)) => {
                    let streaming = last.is_some_and(|t| t.elapsed() < STREAMING);
                    if streaming && spin_until_readable(sock.as_raw_fd()) {
                        continue;
                    }
                    if !wait_fd(sock.as_raw_fd(), events, deadline, intr)? {
                        return Err(Error::timeout(
                            Phase::Recv,
                            self.peer.map(|p| p.to_string()),
                        ));
                    }
                }
            }
        }
    }

    /// Copy out decrypted bytes, feeding rustls what was already read, until
    /// `buf` is full or nothing more is there without a system call.
    /// `Some(0)` at EOF, `None` when nothing is there.
    fn drain(&self, st: &mut State, sock: &Socket, buf: &mut [u8]) -> Result<Option<usize>> {
        let mut got = 0;
        loop {
            match st.conn.reader().read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(Some(0)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && got == 0 => {
                    return Ok(Some(0))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(e) => return Err(self.io_error(Phase::Recv, e)),
            }
            if got == buf.len() || st.pending_in() == 0 {
                break;
            }
            match st.feed(buf.len() - got) {
                Ok(0) => break, // rustls takes no more (after a close_notify)
                Ok(_) => {}
                Err(e) => {
                    let _ = st.push(sock);
                    return Err(self.tls_error(&e));
                }
            }
        }
        Ok((got > 0).then_some(got))
    }

    /// Decrypted bytes if there are some, else one nonblocking pull.
    fn read_step(&self, sock: &Socket, buf: &mut [u8]) -> Result<std::result::Result<usize, Step>> {
        let mut st = lock(&self.state);
        // A connection that already failed (in another thread's call) says
        // so rather than waiting for bytes that will not come.
        self.process(&mut st, sock)?;
        if let Some(n) = self.drain(&mut st, sock, buf)? {
            if st.conn.wants_write() {
                // Post-handshake replies (a KeyUpdate's) go out if they can;
                // a full socket leaves them to the next write.
                let _ = st.push(sock);
            }
            return Ok(Ok(n));
        }
        // Room for the whole request plus the records' overhead.
        let want = buf.len() + buf.len() / 64;
        match st.pull(sock, want) {
            Ok(_) => {
                // At EOF (0) rustls now knows: the next reader() call says
                // Ok(0) after a close_notify, UnexpectedEof without one.
                self.process(&mut st, sock)?;
                Ok(Err(Step::Again))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Err(Step::Wait(libc::POLLIN))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Err(Step::Again)),
            Err(e) => Err(self.io_error(Phase::Recv, e)),
        }
    }

    /// Encrypt and send all of `data` within `deadline`. On failure the
    /// error's `bytes_sent` counts the bytes handed to TLS (encrypted,
    /// possibly not yet all in the kernel).
    pub fn write_all(
        &self,
        sock: &Socket,
        data: &[u8],
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<()> {
        self.handshake(sock, deadline, intr)?;
        let _w = lock(&self.wlock);
        let mut taken = 0;
        let sent_all = |e: Error, taken: usize| Error::SendAll {
            bytes_sent: taken,
            source: Box::new(e),
        };
        self.process(&mut lock(&self.state), sock)
            .map_err(|e| sent_all(e, 0))?;
        loop {
            let step = {
                let mut st = lock(&self.state);
                let mut progress = false;
                if taken < data.len() {
                    let end = match taken {
                        0 => FIRST_SEND.min(data.len()),
                        _ => data.len(),
                    };
                    let n = st
                        .conn
                        .writer()
                        .write(&data[taken..end])
                        .map_err(|e| sent_all(self.io_error(Phase::Send, e), taken))?;
                    taken += n;
                    progress = n > 0;
                }
                let queued = st.conn.wants_write();
                match st.push(sock) {
                    Ok(true) if taken == data.len() => return Ok(()),
                    Ok(true) if !progress && !queued => {
                        return Err(sent_all(
                            Error::tls(
                                self.peer.as_ref(),
                                TlsFailure::Protocol("the connection can no longer send".into()),
                            ),
                            taken,
                        ))
                    }
                    Ok(true) => Step::Again,
                    Ok(false) => Step::Wait(libc::POLLOUT),
                    Err(e) => return Err(sent_all(self.io_error(Phase::Send, e), taken)),
                }
            };
            if let Step::Wait(events) = step {
                match wait_fd(sock.as_raw_fd(), events, deadline, intr) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(sent_all(
                            Error::timeout(Phase::Send, self.peer.map(|p| p.to_string())),
                            taken,
                        ))
                    }
                    Err(Error::Interrupted) => return Err(Error::Interrupted),
                    Err(e) => return Err(sent_all(e, taken)),
                }
            }
        }
    }

    /// Queue a close_notify and send it (and anything still queued) within
    /// `deadline`. Reading stays possible: the peer may still send.
    pub fn send_close_notify(
        &self,
        sock: &Socket,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<()> {
        let _w = lock(&self.wlock);
        lock(&self.state).conn.send_close_notify();
        loop {
            let done = lock(&self.state)
                .push(sock)
                .map_err(|e| self.io_error(Phase::Send, e))?;
            if done {
                return Ok(());
            }
            if !wait_fd(sock.as_raw_fd(), libc::POLLOUT, deadline, intr)? {
                return Err(Error::timeout(
                    Phase::Send,
                    self.peer.map(|p| p.to_string()),
                ));
            }
        }
    }

    /// Decrypted bytes already received and not yet read (ciphertext read
    /// and not yet decrypted counts too: it is there without waiting).
    pub fn buffered(&self) -> usize {
        let mut st = lock(&self.state);
        let _ = st.feed(usize::MAX);
        st.pending_in()
            + st.conn
                .process_new_packets()
                .map_or(0, |s| s.plaintext_bytes_to_read())
    }

    /// The certificates the peer presented, leaf first, as facts. Client
    /// side, this also works after a handshake that failed verification
    /// (`verify=True`): what the server sent is what users ask about then.
    pub fn peer_certificates(&self) -> Vec<CertInfo> {
        let st = lock(&self.state);
        let parse = |ders: &[rustls_pki_types::CertificateDer<'_>]| -> Vec<CertInfo> {
            ders.iter()
                .filter_map(|c| CertInfo::from_der(c).ok())
                .collect()
        };
        match st.conn.peer_certificates() {
            Some(certs) if !certs.is_empty() => parse(certs),
            _ => self
                .record
                .as_ref()
                .map(|r| parse(&r.failed_chain()))
                .unwrap_or_default(),
        }
    }

    /// What the handshake agreed on; computed once, after the handshake.
    /// `None` while it is still running (or after it failed). Certificates
    /// x509-parser cannot read are left out of `certificates`.
    pub fn info(&self) -> Option<TlsInfo> {
        if let Some(i) = self.info.get() {
            return Some(i.clone());
        }
        let st = lock(&self.state);
        if st.conn.is_handshaking() {
            return None;
        }
        let certificates = st
            .conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .filter_map(|c| CertInfo::from_der(c).ok())
            .collect::<Vec<_>>();
        let (verified, verify_error) = match &self.record {
            Some(r) => r.outcome(),
            // Server side: the handshake only finishes with a verified
            // client certificate when one is required.
            None => (self.client_auth && !certificates.is_empty(), None),
        };
        let info = TlsInfo {
            version: st
                .conn
                .protocol_version()
                .map(version_name)
                .unwrap_or_default(),
            cipher: st
                .conn
                .negotiated_cipher_suite()
                .map(|s| cipher_name(s.suite()))
                .unwrap_or_default(),
            alpn: st
                .conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            verified,
            verify_error,
            certificates,
        };
        drop(st);
        Some(self.info.get_or_init(|| info).clone())
    }
}
