//! TcpServerCore with TLS in each mode: rustls clients (through
//! `TcpConnection`) get served; plaintext, silent and certificate-less
//! clients are closed and counted without holding up the others.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::error::Error;
use crate::options::SocketOptions;
use crate::tcp::TcpConnection;
use crate::tls::testpki::pki;
use crate::tls::{ClientTls, ServerTls, TlsConfig};
use crate::wait::{Deadline, NoInterrupt};

use super::{
    ConnHandler, ConnOutcome, Framing, Limits, MessageHandler, Mode, Outcome, Server, StopSignal,
    TcpServerCore, ThreadHooks,
};

fn soon() -> Deadline {
    Deadline::after(Some(Duration::from_secs(10)))
}

fn server_tls(client_auth: bool) -> Option<Arc<ServerTls>> {
    let p = pki()?;
    let cfg = TlsConfig {
        cert_file: Some(p.path("rsa.pem")),
        key_file: Some(p.path("rsa.key")),
        client_ca_file: client_auth.then(|| p.path("ca.pem")),
        ..TlsConfig::default()
    };
    Some(Arc::new(ServerTls::new(&cfg).unwrap()))
}

fn client_tls(with_cert: bool) -> ClientTls {
    let p = pki().unwrap();
    ClientTls::new(&TlsConfig {
        ca_file: Some(p.path("ca.pem")),
        cert_file: with_cert.then(|| p.path("client.pem")),
        key_file: with_cert.then(|| p.path("client.key")),
        ..TlsConfig::default()
    })
    .unwrap()
}

fn serve(mode: Mode, limits: Limits, tls: Arc<ServerTls>) -> TcpServerCore {
    let s = TcpServerCore::bind(
        "127.0.0.1:0".parse().unwrap(),
        SocketOptions::default(),
        128,
        limits,
        mode,
        ThreadHooks::none(),
        Some(tls),
    )
    .unwrap();
    s.start().unwrap();
    s
}

fn plain(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

fn tls_client(addr: SocketAddr, tls: &ClientTls) -> crate::error::Result<TcpConnection> {
    let c = TcpConnection::new(Socket::from(plain(addr)), Some(Duration::from_secs(5)))?;
    c.start_tls_client(tls, "localhost", soon(), &NoInterrupt)?;
    Ok(c)
}

/// True once the server has closed `c` (EOF or reset) within 5 s.
fn closed_by_server(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 256];
    loop {
        match c.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

fn echo_round_trip(c: &TcpConnection, data: &[u8]) {
    c.send_all(data, &NoInterrupt).unwrap();
    assert_eq!(c.recv_exact(data.len(), &NoInterrupt).unwrap(), data);
}

struct Upper;
impl MessageHandler for Upper {
    fn handle(&self, _: SocketAddr, msgs: &[Vec<u8>], _: usize) -> Vec<Outcome> {
        msgs.iter()
            .map(|m| Outcome::Reply(m.to_ascii_uppercase()))
            .collect()
    }
}

struct EchoLines;
impl ConnHandler for EchoLines {
    fn handle(&self, conn: TcpConnection, _: SocketAddr, _: &StopSignal) -> ConnOutcome {
        assert!(conn.is_tls());
        while let Ok(l) = conn.recv_line(1 << 16, &NoInterrupt) {
            if l.is_empty() || conn.send_all(&l, &NoInterrupt).is_err() {
                break;
            }
        }
        ConnOutcome::Done
    }
}

fn modes() -> Vec<(&'static str, Mode)> {
    vec![
        ("echo", Mode::Echo),
        (
            "on_message",
            Mode::Message {
                handler: Arc::new(Upper),
                framing: Framing::Line,
            },
        ),
        ("handler", Mode::Handler(Arc::new(EchoLines))),
    ]
}

fn expected(mode: &str, line: &[u8]) -> Vec<u8> {
    match mode {
        "on_message" => line.to_ascii_uppercase(),
        _ => line.to_vec(),
    }
}

#[test]
fn each_mode_serves_tls_and_counts_no_failure() {
    let Some(tls) = server_tls(false) else {
        eprintln!("SKIPPED: the openssl command is not installed");
        return;
    };
    let ctls = client_tls(false);
    for (name, mode) in modes() {
        let s = serve(mode, Limits::default(), tls.clone());
        let c = tls_client(s.local_addr(), &ctls).unwrap();
        // Pipelined lines, and one larger than a TLS record.
        let big = [vec![b'x'; 40_000], b"\n".to_vec()].concat();
        let msg = [&b"one\ntwo\n"[..], &big].concat();
        c.send_all(&msg, &NoInterrupt).unwrap();
        let want = expected(name, &msg);
        assert_eq!(
            c.recv_exact(want.len(), &NoInterrupt).unwrap(),
            want,
            "{name}"
        );
        let items = s.stats_items();
        assert!(items.contains(&("tls_failures", 0)), "{name}: {items:?}");
        s.stop(Duration::from_secs(1));
        assert_eq!(c.recv(10, &NoInterrupt).unwrap(), b"", "{name}");
    }
}

#[test]
fn plaintext_and_silent_clients_are_closed_counted_and_block_nobody() {
    let Some(tls) = server_tls(false) else {
        return;
    };
    let ctls = client_tls(false);
    let limits = Limits {
        idle_timeout: Some(Duration::from_millis(300)),
        ..Limits::default()
    };
    for (name, mode) in modes() {
        let s = serve(mode, limits, tls.clone());
        // A port check (connect, close) is no TLS failure.
        drop(plain(s.local_addr()));
        let mut silent = plain(s.local_addr());
        let mut http = plain(s.local_addr());
        http.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(closed_by_server(&mut http), "{name}");
        // The silent client holds its own slot only.
        let c = tls_client(s.local_addr(), &ctls).unwrap();
        echo_round_trip(&c, b"hi\n".to_ascii_uppercase().as_slice());
        let t0 = Instant::now();
        assert!(closed_by_server(&mut silent), "{name}");
        assert!(t0.elapsed() < Duration::from_secs(3), "{name}");
        let st = s.stats().snapshot();
        assert!(
            wait_for(|| s.stats().snapshot().tls_failures == 2),
            "{name}: {st:?}"
        );
        s.stop(Duration::from_secs(1));
    }
}

#[test]
fn client_certificates_required() {
    let Some(tls) = server_tls(true) else {
        return;
    };
    for (name, mode) in modes() {
        let s = serve(mode, Limits::default(), tls.clone());
        let c = tls_client(s.local_addr(), &client_tls(true)).unwrap();
        echo_round_trip(&c, b"CERT\n");
        // TLS 1.3: the client's handshake ends before the server has seen
        // its (missing) certificate; the refusal comes with the first read.
        let refused = tls_client(s.local_addr(), &client_tls(false)).and_then(|c| {
            c.send_all(b"x\n", &NoInterrupt)?;
            c.recv(10, &NoInterrupt)
        });
        assert!(
            matches!(refused, Err(Error::Tls { .. })) || matches!(&refused, Ok(b) if b.is_empty()),
            "{name}: {refused:?}"
        );
        assert!(
            wait_for(|| s.stats().snapshot().tls_failures == 1),
            "{name}"
        );
        s.stop(Duration::from_secs(1));
    }
}

#[test]
fn accept_returns_handshaken_connections_past_a_silent_one() {
    let Some(tls) = server_tls(false) else {
        return;
    };
    let s = Arc::new(serve(Mode::Accept, Limits::default(), tls));
    let addr = s.local_addr();
    drop(plain(addr)); // a port check: neither returned nor raised
    let _silent = plain(addr);
    let client = std::thread::spawn(move || {
        let c = tls_client(addr, &client_tls(false)).unwrap();
        echo_round_trip(&c, b"ping\n");
    });
    let (conn, peer) = s
        .accept(Some(Duration::from_secs(5)), &NoInterrupt)
        .unwrap();
    assert!(conn.is_tls() && peer.ip().is_loopback());
    let line = conn.recv_line(100, &NoInterrupt).unwrap();
    conn.send_all(&line, &NoInterrupt).unwrap();
    client.join().unwrap();
    // A plaintext client: accept() raises its handshake's error.
    let mut http = plain(addr);
    http.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let e = s
        .accept(Some(Duration::from_secs(5)), &NoInterrupt)
        .unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e}");
    assert_eq!(s.stats().snapshot().tls_failures, 1);
    // stop() wakes the silent client's handshake and joins it.
    let t0 = Instant::now();
    s.stop(Duration::from_secs(1));
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(s.stats().snapshot().tls_failures, 1);
    assert!(matches!(s.accept(None, &NoInterrupt), Err(Error::Stopped)));
}
