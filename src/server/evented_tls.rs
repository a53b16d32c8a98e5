//! TLS for the on_message and echo modes: one connection's handshake,
//! reads and writes on the event loop, without blocking it.
//!
//! rustls's `ServerConnection` is driven by hand over tokio's `TcpStream`
//! (`read_tls` / `process_new_packets` / `write_tls` on `try_read` /
//! `try_write`, waiting with `readable()` / `writable()`), the way
//! `crate::tls::TlsSession` drives it over a blocking wait, rather than
//! through tokio-rustls: the plain path already reads with `try_read`
//! into a stack buffer so an idle connection holds no buffer, and this
//! keeps that (tokio-rustls's stream adds its own per-connection
//! buffering on top of rustls's); it adds no dependency (tokio-rustls's
//! default features pull in aws-lc-rs, the provider socketkit avoids, see
//! `crate::tls`); and a handshake is one more `await` in the same task.
//!
//! The handshake is bounded by `Limits::handshake_timeout()`: a client
//! that connects and never speaks TLS (or a plaintext client) costs only
//! its own task and connection slot, until then. A failed handshake is
//! counted in `Stats::tls_failures` and reported through
//! `ThreadHooks::debug`; a stop during it is neither, nor is a client that
//! leaves without sending a byte (a port check, a scan: no TLS client).
//!
//! `bytes_in` / `bytes_out` count application bytes (decrypted), as the
//! plain path counts what it reads and writes.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConnection;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::tls::ServerTls;

use super::codec::Decoder;
use super::conns::Tracked;
use super::evented::{answer, readable, recycle, writable, Ctx, Ready, Step};
use super::stats::ActiveGuard;
use super::Stats;

/// The most plaintext one read hands to the decoder (as the plain path's
/// stack buffer).
const CHUNK: usize = 64 * 1024;

/// The socket as `Read` / `Write` for rustls: nonblocking, `WouldBlock`
/// when not ready (tokio then clears the readiness it had cached).
struct TryIo<'a>(&'a TcpStream);

impl Read for TryIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for TryIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a handshake did not finish.
enum Failed {
    /// The client closed (or reset) without sending a byte: a port check
    /// or a scan, not a TLS client; neither counted nor reported.
    Left,
    Tls(rustls::Error),
    Io(io::Error),
    /// The client closed before the handshake finished.
    Closed,
    TimedOut,
}

impl Failed {
    fn describe(&self) -> String {
        match self {
            Failed::Tls(e) => format!("TLS error: {e}"),
            Failed::Io(e) => format!("I/O error: {e}"),
            Failed::Left => "left without a byte".into(),
            Failed::Closed => "closed during the handshake".into(),
            Failed::TimedOut => "timed out".into(),
        }
    }
}

/// Send everything rustls has queued, waiting for room as needed (up to
/// `idle` at a time, as the plain path).
async fn flush(
    s: &TcpStream,
    conn: &mut ServerConnection,
    idle: Option<Duration>,
) -> io::Result<()> {
    while conn.wants_write() {
        match conn.write_tls(&mut TryIo(s)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(s, idle).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Feed rustls what arrived; on a TLS error its alert goes out if the
/// socket takes it at once (a peer that sends garbage gets no more wait).
fn process(s: &TcpStream, conn: &mut ServerConnection) -> Result<(), rustls::Error> {
    conn.process_new_packets().map(|_| ()).inspect_err(|_| {
        let _ = conn.write_tls(&mut TryIo(s));
    })
}

async fn handshake(s: &TcpStream, conn: &mut ServerConnection) -> Result<(), Failed> {
    let mut spoke = false;
    loop {
        // The handshake's own timeout bounds this wait.
        flush(s, conn, None).await.map_err(Failed::Io)?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        match conn.read_tls(&mut TryIo(s)) {
            Ok(0) if !spoke => return Err(Failed::Left),
            Ok(0) => {
                // What came before the close may finish the handshake (the
                // reads then see EOF) or hold the client's alert.
                process(s, conn).map_err(Failed::Tls)?;
                if conn.is_handshaking() {
                    return Err(Failed::Closed);
                }
            }
            Ok(_) => {
                spoke = true;
                process(s, conn).map_err(Failed::Tls)?
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                s.readable().await.map_err(Failed::Io)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if !spoke => return Err(Failed::Left),
            Err(e) => return Err(Failed::Io(e)),
        }
    }
}

/// Encrypt and send all of `data`.
async fn send(
    s: &TcpStream,
    conn: &mut ServerConnection,
    data: &[u8],
    idle: Option<Duration>,
) -> io::Result<()> {
    let mut taken = 0;
    while taken < data.len() {
        // rustls takes plaintext up to its buffer limit, then only after
        // the queued records are sent.
        let n = conn.writer().write(&data[taken..])?;
        if n == 0 && !conn.wants_write() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        taken += n;
        flush(s, conn, idle).await?;
    }
    Ok(())
}

/// What one look at rustls's decrypted bytes gave.
enum Plain {
    /// This many bytes went to the decoder.
    Got(usize),
    /// Nothing until more TLS records arrive.
    Empty,
    /// The client ended the stream (close_notify, or a close without one).
    Eof,
}

/// Move one chunk of decrypted bytes into the decoder, through a buffer on
/// the thread's stack (not part of the task's future).
fn plaintext(conn: &mut ServerConnection, dec: &mut Decoder) -> io::Result<Plain> {
    let mut chunk = [0u8; CHUNK];
    let want = dec.read_size().min(CHUNK);
    match conn.reader().read(&mut chunk[..want]) {
        Ok(0) => Ok(Plain::Eof),
        Ok(n) => {
            dec.push(&chunk[..n]);
            Ok(Plain::Got(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Plain::Empty),
        // Closed without close_notify: Python's suppress_ragged_eofs.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Plain::Eof),
        Err(e) => Err(e),
    }
}

/// A best-effort close_notify, never waiting: the connection is ending.
fn goodbye(s: &TcpStream, conn: &mut ServerConnection) {
    conn.send_close_notify();
    let _ = conn.write_tls(&mut TryIo(s));
}

pub(super) async fn serve(
    s: Tracked,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    tls: &ServerTls,
    _guard: ActiveGuard,
    mut stop: watch::Receiver<bool>,
) {
    if *stop.borrow() {
        return;
    }
    let Ok(mut conn) = tls.connection() else {
        return;
    };
    let limit = ctx.limits.handshake_timeout();
    let done = tokio::select! {
        biased;
        _ = stop.changed() => return,
        r = tokio::time::timeout(limit, handshake(&s, &mut conn)) => {
            r.unwrap_or(Err(Failed::TimedOut))
        }
    };
    if let Err(f) = done {
        if matches!(f, Failed::Left) {
            return;
        }
        Stats::add(&ctx.stats.tls_failures, 1);
        (ctx.debug)(&format!(
            "TLS handshake with {peer} failed: {}",
            f.describe()
        ));
        return;
    }
    serve_messages(&s, peer, &ctx, &mut conn, &mut stop).await;
    goodbye(&s, &mut conn);
}

/// The plain path's loop, through TLS: decrypted bytes the handshake's
/// last read already brought are answered before waiting for more.
async fn serve_messages(
    s: &TcpStream,
    peer: SocketAddr,
    ctx: &Ctx,
    conn: &mut ServerConnection,
    stop: &mut watch::Receiver<bool>,
) {
    let mut dec = Decoder::new(ctx.framing, ctx.limits.max_message);
    let mut msgs = Vec::new();
    let mut out = Vec::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let eof = match plaintext(conn, &mut dec) {
            Ok(Plain::Got(n)) => {
                Stats::add(&ctx.stats.bytes_in, n as u64);
                false
            }
            // EOF, perhaps a half-close: all that came is answered, an
            // unterminated last line included.
            Ok(Plain::Eof) => {
                dec.finish();
                true
            }
            Ok(Plain::Empty) => {
                if !wait_for_records(s, ctx, conn, stop).await {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        // As the plain path: replies go out every `max_unsent` bytes.
        loop {
            let step = answer(ctx, peer, &mut dec, &mut msgs, &mut out);
            if !out.is_empty() {
                if send(s, conn, &out, ctx.limits.idle_timeout).await.is_err() {
                    return;
                }
                Stats::add(&ctx.stats.bytes_out, out.len() as u64);
                recycle(&mut out);
            }
            match step {
                Step::Full => {}
                Step::Drained if !eof => break,
                Step::Drained | Step::Close => return,
            }
        }
    }
}

/// Wait for the next TLS records and feed them to rustls; false when the
/// connection ends (stop, idle timeout, reset, a TLS error).
async fn wait_for_records(
    s: &TcpStream,
    ctx: &Ctx,
    conn: &mut ServerConnection,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return false,
            r = readable(s, ctx.limits.idle_timeout) => match r {
                Ready::Yes => {}
                Ready::TimedOut | Ready::Failed => return false,
            }
        }
        match conn.read_tls(&mut TryIo(s)) {
            Ok(_) => {} // at EOF (0) rustls now knows; the reader says so
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false, // reset
        }
        if process(s, conn).is_err() {
            return false;
        }
        // Post-handshake messages (a KeyUpdate's answer) go out now.
        return flush(s, conn, ctx.limits.idle_timeout).await.is_ok();
    }
}
