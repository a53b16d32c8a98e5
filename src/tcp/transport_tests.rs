//! `TcpConnection` over TLS, both ends `TcpConnection`s on loopback: every
//! recv/send method, STARTTLS with bytes already buffered, close from
//! another thread, close_notify on shutdown, sendfile, full duplex, and the
//! refusals (a second start_tls, detach).

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::error::Error;
use crate::tls::testpki::pki;
use crate::tls::{ClientTls, ServerTls, TlsConfig};
use crate::wait::{Deadline, NoInterrupt};

use super::stream::{Reply, TcpConnection};

fn soon() -> Deadline {
    Deadline::after(Some(Duration::from_secs(10)))
}

/// A connected (client, server) pair of plain connections.
fn pair() -> (TcpConnection, TcpConnection) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    let t = Some(Duration::from_secs(10));
    (
        TcpConnection::new(Socket::from(c), t).unwrap(),
        TcpConnection::new(Socket::from(s), t).unwrap(),
    )
}

fn tls_pair() -> Option<(TcpConnection, Arc<TcpConnection>, ClientTls, ServerTls)> {
    let Some(p) = pki() else {
        eprintln!("SKIPPED: the openssl command is not installed");
        return None;
    };
    let client = ClientTls::new(&TlsConfig {
        ca_file: Some(p.path("ca.pem")),
        ..TlsConfig::default()
    })
    .unwrap();
    let server = ServerTls::new(&TlsConfig {
        cert_file: Some(p.path("rsa.pem")),
        key_file: Some(p.path("rsa.key")),
        ..TlsConfig::default()
    })
    .unwrap();
    let (c, s) = pair();
    Some((c, Arc::new(s), client, server))
}

/// Start the server side's handshake on a thread, then `body` on it.
fn server_thread<T: Send + 'static>(
    s: Arc<TcpConnection>,
    tls: ServerTls,
    body: impl FnOnce(&TcpConnection) -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        s.start_tls_server(&tls, soon(), &NoInterrupt).unwrap();
        body(&s)
    })
}

#[test]
fn every_recv_method_over_tls() {
    let Some((c, s, ctls, stls)) = tls_pair() else {
        return;
    };
    let h = server_thread(s, stls, |s| {
        s.send_all(b"line one\nrest", &NoInterrupt).unwrap();
        let q = s.recv_until(b"?", 100, &NoInterrupt).unwrap();
        s.send_all(&[q.as_slice(), b"ANSWER!"].concat(), &NoInterrupt)
            .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        s.recv(10, &NoInterrupt).unwrap()
    });
    assert!(!c.is_tls());
    assert!(c.tls_info().is_none());
    c.start_tls_client(&ctls, "localhost", soon(), &NoInterrupt)
        .unwrap();
    assert!(c.is_tls());
    let info = c.tls_info().unwrap();
    assert!(info.verified, "{info:?}");
    assert_eq!(info.certificates[0].sans[0], "localhost");
    assert_eq!(c.recv_line(100, &NoInterrupt).unwrap(), b"line one\n");
    assert_eq!(c.recv_exact(2, &NoInterrupt).unwrap(), b"re");
    let reply = c
        .request(b"what?", Reply::Until(b"!", 100), &NoInterrupt)
        .unwrap();
    assert_eq!(reply, b"stwhat?ANSWER!");
    // The server's close_notify: a clean EOF, not an error.
    let mut buf = [0u8; 8];
    assert_eq!(c.recv_into(&mut buf, &NoInterrupt).unwrap(), 0);
    assert_eq!(c.recv_line(100, &NoInterrupt).unwrap(), b"");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(h.join().unwrap(), b"");
}

#[test]
fn starttls_hands_buffered_bytes_to_the_session() {
    let Some((c, s, ctls, stls)) = tls_pair() else {
        return;
    };
    let h = thread::spawn(move || {
        // The ClientHello follows "STARTTLS\n" at once, so it is likely
        // read into the buffer with the line: the session must get it.
        assert_eq!(s.recv_line(100, &NoInterrupt).unwrap(), b"STARTTLS\n");
        s.start_tls_server(&stls, soon(), &NoInterrupt).unwrap();
        let got = s.recv_line(100, &NoInterrupt).unwrap();
        s.send_all(&got, &NoInterrupt).unwrap();
    });
    c.send_all(b"STARTTLS\n", &NoInterrupt).unwrap();
    c.start_tls_client(&ctls, "localhost", soon(), &NoInterrupt)
        .unwrap();
    c.send_all(b"secret\n", &NoInterrupt).unwrap();
    assert_eq!(c.recv_line(100, &NoInterrupt).unwrap(), b"secret\n");
    h.join().unwrap();
}

#[test]
fn second_start_tls_and_detach_are_refused() {
    let Some((c, s, ctls, stls)) = tls_pair() else {
        return;
    };
    // The client closes with the server's session tickets unread: the
    // server may see a reset, which is not what this test is about.
    let h = server_thread(s, stls, |s| s.recv(10, &NoInterrupt).ok());
    c.start_tls_client(&ctls, "localhost", soon(), &NoInterrupt)
        .unwrap();
    let e = c
        .start_tls_client(&ctls, "localhost", soon(), &NoInterrupt)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "start_tls: the connection already speaks TLS"
    );
    let e = c.detach().unwrap_err();
    assert!(e.to_string().starts_with("detach: refused on a TLS"), "{e}");
    assert!(c.is_open());
    c.close();
    h.join().unwrap();
}

#[test]
fn close_from_another_thread_wakes_a_blocked_tls_recv() {
    let Some((c, s, ctls, stls)) = tls_pair() else {
        return;
    };
    let c = Arc::new(c);
    let h = server_thread(s.clone(), stls, |s| {
        // Stay silent until the client is gone.
        s.recv(10, &NoInterrupt)
    });
    c.start_tls_client(&ctls, "localhost", soon(), &NoInterrupt)
        .unwrap();
    let c2 = c.clone();
    let reader = thread::spawn(move || {
        let t = Instant::now();
        (c2.recv(10, &NoInterrupt), t)
    });
    thread::sleep(Duration::from_millis(100));
    c.close();
    let (got, t) = reader.join().unwrap();
    assert!(matches!(got, Err(Error::ClosedSocket)), "{got:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let _ = h.join().unwrap();
}

#[test]
fn close_during_the_handshake_reports_the_closed_socket() {
    // A peer that never answers: the handshake waits until closed.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_quiet, _) = l.accept().unwrap();
    let Some(p) = pki() else { return };
    let ctls = ClientTls::new(&TlsConfig {
        ca_file: Some(p.path("ca.pem")),
        ..TlsConfig::default()
    })
    .unwrap();
    let c = Arc::new(TcpConnection::new(Socket::from(c), None).unwrap());
    let c2 = c.clone();
    let h = thread::spawn(move || {
        c2.start_tls_client(&ctls, "localhost", Deadline::NEVER, &NoInterrupt)
    });
    thread::sleep(Duration::from_millis(100));
    c.close();
    let got = h.join().unwrap();
    assert!(matches!(got, Err(Error::ClosedSocket)), "{got:?}");
}

#[test]
fn full_duplex_and_sendfile_over_tls() {
    let Some((c, s, ctls, stls)) = tls_pair() else {
        return;
    };
    // The server echoes everything back, then closes cleanly.
    let h = server_thread(s, stls, |s| {
        let mut total = 0;
        loop {
            let b = s.recv(65536, &NoInterrupt).unwrap();
            if b.is_empty() {
                s.shutdown(Shutdown::Write).unwrap();
                return total;
            }
            total += b.len();
            s.send_all(&b, &NoInterrupt).unwrap();
        }
    });
    c.start_tls_client(&ctls, "localhost", soon(), &NoInterrupt)
        .unwrap();
    let c = Arc::new(c);
    // More than the socket buffers hold: writer and reader must overlap.
    let mut file = tempfile();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    file.write_all(&content).unwrap();
    let c2 = c.clone();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let b = c2.recv(65536, &NoInterrupt).unwrap();
            if b.is_empty() {
                return got;
            }
            got.extend(b);
        }
    });
    c.send_all(&content[..1000], &NoInterrupt).unwrap();
    let sent = c
        .sendfile(file.as_raw_fd(), 1000, None, &NoInterrupt)
        .unwrap();
    assert_eq!(sent, content.len() as u64 - 1000);
    c.shutdown(Shutdown::Write).unwrap();
    let got = reader.join().unwrap();
    assert_eq!(got.len(), content.len());
    assert!(got == content);
    assert_eq!(h.join().unwrap(), content.len());
}

fn tempfile() -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "socketkit-sendfile-{}-{:?}",
        std::process::id(),
        thread::current().id()
    ));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let _ = std::fs::remove_file(&path);
    f
}

#[test]
fn handshake_timeout_is_a_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_quiet, _) = l.accept().unwrap();
    let Some(p) = pki() else { return };
    let ctls = ClientTls::new(&TlsConfig {
        ca_file: Some(p.path("ca.pem")),
        ..TlsConfig::default()
    })
    .unwrap();
    let c = TcpConnection::new(Socket::from(c), None).unwrap();
    let t = Instant::now();
    let e = c
        .start_tls_client(
            &ctls,
            "localhost",
            Deadline::after(Some(Duration::from_millis(150))),
            &NoInterrupt,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(t.elapsed() >= Duration::from_millis(150));
}
