//! TlsSession end to end over loopback: a rustls server thread and the
//! client, echo, full duplex, ALPN, versions, client certificates, EOFs,
//! STARTTLS, deadlines and interrupts.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::error::{Error, Phase, Result, TlsFailure};
use crate::wait::{Deadline, Interrupt, NoInterrupt, SLICE};

use super::config::{TlsConfig, TlsVersion};
use super::context::{ClientTls, ServerTls};
use super::session::TlsSession;
use super::testpki::pki;

pub(super) fn soon() -> Deadline {
    Deadline::after(Some(Duration::from_secs(10)))
}

fn nonblocking(s: TcpStream) -> Socket {
    let s = Socket::from(s);
    s.set_nonblocking(true).unwrap();
    s
}

/// A server config for `NAME.pem` / `NAME.key` of the test PKI.
pub(super) fn server_cfg(name: &str) -> TlsConfig {
    let p = pki().unwrap();
    TlsConfig {
        cert_file: Some(p.path(&format!("{name}.pem"))),
        key_file: Some(p.path(&format!("{name}.key"))),
        ..TlsConfig::default()
    }
}

/// A client config trusting the test CA.
pub(super) fn client_cfg() -> TlsConfig {
    TlsConfig {
        ca_file: Some(pki().unwrap().path("ca.pem")),
        ..TlsConfig::default()
    }
}

/// A server thread: accepts one connection, handshakes, then runs `body`.
pub(super) fn serve<T: Send + 'static>(
    cfg: TlsConfig,
    body: impl FnOnce(&TlsSession, &Socket) -> Result<T> + Send + 'static,
) -> (SocketAddr, JoinHandle<Result<T>>) {
    let tls = ServerTls::new(&cfg).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (s, peer) = l.accept().unwrap();
        let sock = nonblocking(s);
        let sess = TlsSession::server(&tls, Some(peer), Vec::new())?;
        sess.handshake(&sock, soon(), &NoInterrupt)?;
        body(&sess, &sock)
    });
    (addr, h)
}

/// Echo until EOF, then close_notify.
pub(super) fn echo(sess: &TlsSession, sock: &Socket) -> Result<usize> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = sess.read(sock, &mut buf, soon(), &NoInterrupt)?;
        if n == 0 {
            sess.send_close_notify(sock, soon(), &NoInterrupt)?;
            return Ok(total);
        }
        total += n;
        sess.write_all(sock, &buf[..n], soon(), &NoInterrupt)?;
    }
}

/// Connect and start a client session to `host`; no handshake yet.
pub(super) fn client(cfg: &TlsConfig, addr: SocketAddr, host: &str) -> (TlsSession, Socket) {
    let tls = ClientTls::new(cfg).unwrap();
    let sock = nonblocking(TcpStream::connect(addr).unwrap());
    let sess = TlsSession::client(&tls, host, Some(addr), Vec::new()).unwrap();
    (sess, sock)
}

fn read_exact(sess: &TlsSession, sock: &Socket, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = sess
            .read(sock, &mut out[got..], soon(), &NoInterrupt)
            .unwrap();
        assert!(k > 0, "EOF after {got} of {n} bytes");
        got += k;
    }
    out
}

macro_rules! need_openssl {
    () => {
        if pki().is_none() {
            eprintln!("SKIPPED: the openssl command is not installed");
            return;
        }
    };
}
pub(super) use need_openssl;

#[test]
fn handshake_echo_and_info() {
    need_openssl!();
    let (addr, server) = serve(server_cfg("rsa"), echo);
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    assert!(sess.info().is_none());
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    sess.write_all(&sock, b"hello tls", soon(), &NoInterrupt)
        .unwrap();
    assert_eq!(read_exact(&sess, &sock, 9), b"hello tls");
    let info = sess.info().unwrap();
    assert_eq!(info.version, "TLSv1.3");
    assert!(info.cipher.starts_with("TLS_"), "{}", info.cipher);
    assert!(info.verified);
    assert_eq!(info.verify_error, None);
    assert_eq!(info.alpn, None);
    assert_eq!(info.certificates.len(), 1);
    assert_eq!(
        info.certificates[0].subject,
        "CN=localhost,O=socketkit test,C=DE"
    );
    sess.send_close_notify(&sock, soon(), &NoInterrupt).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(sess.read(&sock, &mut buf, soon(), &NoInterrupt).unwrap(), 0);
    assert_eq!(server.join().unwrap().unwrap(), 9);
}

#[test]
fn chain_is_reported_leaf_first() {
    need_openssl!();
    let mut cfg = server_cfg("rsa");
    cfg.cert_file = Some(pki().unwrap().path("rsa-chain.pem"));
    let (addr, server) = serve(cfg, echo);
    // By IP address: no SNI, verified against the IP SAN.
    let (sess, sock) = client(&client_cfg(), addr, "127.0.0.1");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    let info = sess.info().unwrap();
    assert!(info.verified, "{:?}", info.verify_error);
    let subjects: Vec<&str> = info
        .certificates
        .iter()
        .map(|c| c.subject.as_str())
        .collect();
    assert_eq!(
        subjects,
        [
            "CN=localhost,O=socketkit test,C=DE",
            "CN=socketkit test CA,O=socketkit"
        ]
    );
    drop(sock);
    let _ = server.join();
}

#[test]
fn full_duplex_write_while_another_thread_reads() {
    need_openssl!();
    const N: usize = 4 << 20;
    let (addr, server) = serve(server_cfg("ec"), echo);
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    let sess = Arc::new(sess);
    let sock = Arc::new(sock);
    // More than both socket buffers hold: the echo only flows on while
    // the reader drains, so this deadlocks unless read and write overlap.
    let reader = {
        let (sess, sock) = (sess.clone(), sock.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0usize;
            let mut sum = 0u64;
            while got < N {
                let n = sess.read(&sock, &mut buf, soon(), &NoInterrupt).unwrap();
                assert!(n > 0);
                sum += buf[..n].iter().map(|&b| b as u64).sum::<u64>();
                got += n;
            }
            sum
        })
    };
    let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
    sess.write_all(&sock, &data, soon(), &NoInterrupt).unwrap();
    let expected: u64 = data.iter().map(|&b| b as u64).sum();
    assert_eq!(reader.join().unwrap(), expected);
    sess.send_close_notify(&sock, soon(), &NoInterrupt).unwrap();
    assert_eq!(server.join().unwrap().unwrap(), N);
}

#[test]
fn alpn_agreed_and_refused() {
    need_openssl!();
    let mut scfg = server_cfg("rsa");
    scfg.alpn = vec!["h2".into(), "http/1.1".into()];
    let (addr, server) = serve(scfg.clone(), |s, _| Ok(s.info().unwrap().alpn));
    let mut ccfg = client_cfg();
    ccfg.alpn = vec!["http/1.1".into()];
    let (sess, sock) = client(&ccfg, addr, "localhost");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    assert_eq!(sess.info().unwrap().alpn.as_deref(), Some("http/1.1"));
    assert_eq!(server.join().unwrap().unwrap().as_deref(), Some("http/1.1"));

    let (addr, server) = serve(scfg, |_, _| Ok(()));
    ccfg.alpn = vec!["imap".into()];
    let (sess, sock) = client(&ccfg, addr, "localhost");
    let e = sess.handshake(&sock, soon(), &NoInterrupt).unwrap_err();
    assert!(
        matches!(&e, Error::Tls { failure: TlsFailure::Alert(a), .. } if a == "no application protocol"),
        "{e}"
    );
    assert!(server.join().unwrap().is_err());
}

#[test]
fn versions_min_and_max() {
    need_openssl!();
    let (addr, server) = serve(server_cfg("rsa"), echo);
    let mut ccfg = client_cfg();
    ccfg.max_version = Some(TlsVersion::Tls12);
    let (sess, sock) = client(&ccfg, addr, "localhost");
    sess.write_all(&sock, b"ping", soon(), &NoInterrupt)
        .unwrap(); // handshakes first
    assert_eq!(read_exact(&sess, &sock, 4), b"ping");
    let info = sess.info().unwrap();
    assert_eq!(info.version, "TLSv1.2");
    assert!(
        info.cipher.starts_with("TLS_ECDHE_RSA_WITH_"),
        "{}",
        info.cipher
    );
    assert!(info.verified);
    drop(sock);
    let _ = server.join();

    let mut scfg = server_cfg("rsa");
    scfg.max_version = Some(TlsVersion::Tls12);
    let (addr, server) = serve(scfg, |_, _| Ok(()));
    let mut ccfg = client_cfg();
    ccfg.min_version = Some(TlsVersion::Tls13);
    let (sess, sock) = client(&ccfg, addr, "localhost");
    let e = sess.handshake(&sock, soon(), &NoInterrupt).unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e}");
    assert!(server.join().unwrap().is_err());
}

#[test]
fn client_certificate_required() {
    need_openssl!();
    let p = pki().unwrap();
    let mut scfg = server_cfg("rsa");
    scfg.client_ca_file = Some(p.path("ca.pem"));
    let (addr, server) = serve(scfg.clone(), |s, _| Ok(s.info().unwrap()));
    let mut ccfg = client_cfg();
    ccfg.cert_file = Some(p.path("client.pem"));
    ccfg.key_file = Some(p.path("client.key"));
    let (sess, sock) = client(&ccfg, addr, "localhost");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    let seen = server.join().unwrap().unwrap();
    assert!(seen.verified);
    assert_eq!(seen.certificates[0].subject, "CN=socketkit client");

    // Without one: the server refuses; a TLS 1.3 client learns it from
    // the alert that follows its own finished handshake.
    let (addr, server) = serve(scfg, |_, _| Ok(()));
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    let mut buf = [0u8; 8];
    let e = sess
        .handshake(&sock, soon(), &NoInterrupt)
        .and_then(|_| sess.read(&sock, &mut buf, soon(), &NoInterrupt))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Tls { failure: TlsFailure::Alert(a), .. } if a == "certificate required"),
        "{e}"
    );
    let e = server.join().unwrap().unwrap_err();
    assert!(e.to_string().contains("no certificate"), "{e}");
}

#[test]
fn ragged_eof_reads_as_eof() {
    need_openssl!();
    // The server sends, then closes TCP without a close_notify.
    let (addr, server) = serve(server_cfg("rsa"), |s, sock| {
        s.write_all(sock, b"bye", soon(), &NoInterrupt)?;
        sock.shutdown(Shutdown::Both).unwrap();
        Ok(())
    });
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    assert_eq!(read_exact(&sess, &sock, 3), b"bye");
    let mut buf = [0u8; 8];
    assert_eq!(sess.read(&sock, &mut buf, soon(), &NoInterrupt).unwrap(), 0);
    server.join().unwrap().unwrap();
}

/// What the server sends for the bulk tests: 100 KiB (seven records) of a
/// pattern that tells one offset from another.
fn pattern() -> Vec<u8> {
    (0..100 * 1024u32).map(|i| (i % 251) as u8).collect()
}

/// Ciphertext bytes waiting in the kernel for `sock`.
fn unread(sock: &Socket) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the valid pointer.
    unsafe { libc::ioctl(sock.as_raw_fd(), libc::FIONREAD, &mut n) };
    n as usize
}

#[test]
fn one_read_returns_every_record_that_arrived() {
    need_openssl!();
    let (addr, server) = serve(server_cfg("rsa"), |s, sock| {
        s.write_all(sock, &pattern(), soon(), &NoInterrupt)?;
        echo(s, sock)
    });
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    // Every record is in the kernel (plus the TLS overhead) before the
    // read: one read, one system call, all seven records decrypted.
    let t0 = Instant::now();
    while unread(&sock) < 100 * 1024 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the server sent too little"
        );
        thread::yield_now();
    }
    let mut buf = vec![0u8; 256 * 1024];
    let n = sess.read(&sock, &mut buf, soon(), &NoInterrupt).unwrap();
    assert_eq!(n, 100 * 1024);
    assert!(buf[..n] == pattern()[..]);
    sess.send_close_notify(&sock, soon(), &NoInterrupt).unwrap();
    assert_eq!(server.join().unwrap().unwrap(), 0);
}

#[test]
fn small_reads_across_records_lose_nothing() {
    need_openssl!();
    let (addr, server) = serve(server_cfg("rsa"), |s, sock| {
        s.write_all(sock, &pattern(), soon(), &NoInterrupt)?;
        s.send_close_notify(sock, soon(), &NoInterrupt)?;
        Ok(())
    });
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    // Reads smaller than a record and not dividing it: what one socket
    // read brought in waits, in order, for the next calls.
    let mut got = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = sess.read(&sock, &mut buf, soon(), &NoInterrupt).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == pattern(), "{} bytes, differing", got.len());
    server.join().unwrap().unwrap();
}

#[test]
fn starttls_takes_over_buffered_bytes() {
    need_openssl!();
    let tls = ServerTls::new(&server_cfg("rsa")).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        s.write_all(b"220 ready\r\n").unwrap();
        // The client pipelines its ClientHello behind "STARTTLS\r\n": read
        // until some of it is here too, as a line reader would.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() <= b"STARTTLS\r\n".len() {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"STARTTLS\r\n"));
        let early = got.split_off(b"STARTTLS\r\n".len());
        let sock = nonblocking(s);
        let sess = TlsSession::server(&tls, Some(peer), early).unwrap();
        sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
        echo(&sess, &sock).unwrap()
    });
    let mut plain = TcpStream::connect(addr).unwrap();
    let mut greeting = [0u8; 11];
    plain.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"220 ready\r\n");
    plain.write_all(b"STARTTLS\r\n").unwrap();
    let sock = nonblocking(plain);
    let tls = ClientTls::new(&client_cfg()).unwrap();
    let sess = TlsSession::client(&tls, "localhost", Some(addr), Vec::new()).unwrap();
    sess.handshake(&sock, soon(), &NoInterrupt).unwrap();
    sess.write_all(&sock, b"EHLO", soon(), &NoInterrupt)
        .unwrap();
    assert_eq!(read_exact(&sess, &sock, 4), b"EHLO");
    sess.send_close_notify(&sock, soon(), &NoInterrupt).unwrap();
    assert_eq!(server.join().unwrap(), 4);
}

/// A peer that accepts and never says anything.
fn stalled_peer() -> (SocketAddr, JoinHandle<()>, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        // Hold the connection open until the test is over.
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 4096];
        while !d.load(Ordering::Relaxed) {
            if let Ok(0) = s.read(&mut buf) {
                break;
            }
        }
    });
    (addr, h, done)
}

#[test]
fn stalled_handshake_times_out_at_the_deadline() {
    need_openssl!();
    let (addr, h, done) = stalled_peer();
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    let start = Instant::now();
    let e = sess
        .handshake(
            &sock,
            Deadline::after(Some(Duration::from_millis(300))),
            &NoInterrupt,
        )
        .unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(
            e,
            Error::Timeout {
                phase: Phase::Tls,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(300) + SLICE, "{took:?}");
    done.store(true, Ordering::Relaxed);
    drop(sock);
    h.join().unwrap();
}

/// Interrupts once `fired` is set, remembering when it was first asked after.
struct Flag {
    fired: AtomicBool,
}

impl Interrupt for Flag {
    fn check(&self) -> Result<()> {
        if self.fired.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        Ok(())
    }
}

#[test]
fn interrupt_stops_a_stalled_handshake_within_a_slice() {
    need_openssl!();
    let (addr, h, done) = stalled_peer();
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    let flag = Arc::new(Flag {
        fired: AtomicBool::new(false),
    });
    let f = flag.clone();
    let fire = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        f.fired.store(true, Ordering::Relaxed);
        Instant::now()
    });
    let e = sess.handshake(&sock, Deadline::NEVER, &*flag).unwrap_err();
    let returned = Instant::now();
    let fired_at = fire.join().unwrap();
    assert!(matches!(e, Error::Interrupted), "{e:?}");
    let lag = returned.saturating_duration_since(fired_at);
    assert!(lag <= SLICE + Duration::from_millis(50), "{lag:?}");
    done.store(true, Ordering::Relaxed);
    drop(sock);
    h.join().unwrap();
}

#[test]
fn shutdown_from_another_thread_wakes_the_handshake() {
    need_openssl!();
    let (addr, h, done) = stalled_peer();
    let (sess, sock) = client(&client_cfg(), addr, "localhost");
    let sock = Arc::new(sock);
    let s2 = sock.clone();
    let closer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        // What SockHandle::close() does to wake the calls blocked on it.
        s2.shutdown(Shutdown::Both).unwrap();
    });
    let start = Instant::now();
    let e = sess
        .handshake(&sock, Deadline::NEVER, &NoInterrupt)
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            e,
            Error::Tls {
                failure: TlsFailure::Closed,
                ..
            }
        ),
        "{e:?}"
    );
    closer.join().unwrap();
    done.store(true, Ordering::Relaxed);
    h.join().unwrap();
}
