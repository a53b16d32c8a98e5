//! `AsyncConn` over TLS against a `TlsSession` server thread: a handshake
//! driven by tokio readiness, 1 MiB both ways at once, a close_notify seen
//! as EOF, the handshake's deadline, and a lent exchange handing its
//! leftover bytes back.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::Socket;

use super::connect::connect;
use super::tcp::AsyncConn;
use crate::addr::HostPort;
use crate::error::{Error, Phase, Result};
use crate::options::SocketOptions;
use crate::tls::testpki::pki;
use crate::tls::{ClientTls, ServerTls, TlsConfig, TlsSession};
use crate::wait::{Deadline, NoInterrupt};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn soon() -> Deadline {
    Deadline::after(Some(Duration::from_secs(10)))
}

fn client_tls() -> ClientTls {
    ClientTls::new(&TlsConfig {
        ca_file: Some(pki().unwrap().path("ca.pem")),
        ..TlsConfig::default()
    })
    .unwrap()
}

/// Accept one connection, handshake as the server, echo until EOF, then
/// send a close_notify; the bytes echoed.
fn tls_echo_server() -> (SocketAddr, JoinHandle<Result<usize>>) {
    let p = pki().unwrap();
    let tls = ServerTls::new(&TlsConfig {
        cert_file: Some(p.path("rsa.pem")),
        key_file: Some(p.path("rsa.key")),
        ..TlsConfig::default()
    })
    .unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let (s, peer) = l.accept().unwrap();
        let sock = Socket::from(s);
        sock.set_nonblocking(true).unwrap();
        let sess = TlsSession::server(&tls, Some(peer), Vec::new())?;
        sess.handshake(&sock, soon(), &NoInterrupt)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = sess.read(&sock, &mut buf, soon(), &NoInterrupt)?;
            if n == 0 {
                sess.send_close_notify(&sock, soon(), &NoInterrupt)?;
                return Ok(total);
            }
            total += n;
            sess.write_all(&sock, &buf[..n], soon(), &NoInterrupt)?;
        }
    });
    (addr, h)
}

async fn plain(addr: SocketAddr) -> Arc<AsyncConn> {
    let (s, peer) = connect(
        &HostPort::new("127.0.0.1", addr.port()),
        &SocketOptions::default(),
        None,
        Some(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    Arc::new(AsyncConn::new(s, peer, Some(Duration::from_secs(10))).unwrap())
}

fn in_secs(s: u64) -> Option<tokio::time::Instant> {
    Some(tokio::time::Instant::now() + Duration::from_secs(s))
}

#[test]
fn tls_echo_both_ways_at_once() {
    if pki().is_none() {
        eprintln!("SKIPPED: the openssl command is not installed");
        return;
    }
    let (addr, server) = tls_echo_server();
    rt().block_on(async {
        let c = plain(addr).await;
        assert!(c.tls_info().is_none());
        c.start_tls_client(&client_tls(), "localhost", in_secs(10))
            .await
            .unwrap();
        let info = c.tls_info().unwrap();
        assert!(info.verified && info.version == "TLSv1.3", "{info:?}");
        let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let (sent, got) =
            tokio::join!(c.send_all(&big, 0, c.write_turn()), c.recv_exact(big.len()));
        sent.unwrap();
        assert!(got.unwrap() == big);
        c.shutdown(std::net::Shutdown::Write).unwrap();
        // The server's close_notify: EOF, not an error.
        assert_eq!(c.recv(10).await.unwrap(), b"");
        assert!(matches!(
            c.start_tls_client(&client_tls(), "localhost", None).await,
            Err(Error::InvalidArgument { .. })
        ));
    });
    assert_eq!(server.join().unwrap().unwrap(), 1 << 20);
}

#[test]
fn handshake_deadline_and_a_lent_exchange() {
    if pki().is_none() {
        eprintln!("SKIPPED: the openssl command is not installed");
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    rt().block_on(async {
        // A server that never answers: the handshake's own deadline.
        let c = plain(addr).await;
        let (silent, _) = l.accept().unwrap();
        let until = Some(tokio::time::Instant::now() + Duration::from_millis(200));
        match c.start_tls_client(&client_tls(), "localhost", until).await {
            Err(Error::Timeout { phase, .. }) => assert_eq!(phase, Phase::Tls),
            other => panic!("{other:?}"),
        }
        // A lent exchange: what the blocking connection left buffered comes
        // back, after the bytes the caller read past (`first`).
        let c = plain(addr).await;
        let (mut peer, _) = l.accept().unwrap();
        std::io::Write::write_all(&mut peer, b"line\nfirst rest").unwrap();
        let tc = c.lend().unwrap();
        assert_eq!(tc.recv_line(100, &NoInterrupt).unwrap(), b"line\n");
        c.restore(tc, b">").unwrap();
        let mut got = Vec::new();
        while got.len() < 11 {
            got.extend(c.recv(100).await.unwrap());
        }
        assert_eq!(got, b">first rest");
        drop(silent);
    });
}

#[test]
fn restore_takes_plaintext_left_inside_the_session() {
    if pki().is_none() {
        eprintln!("SKIPPED: the openssl command is not installed");
        return;
    }
    let p = pki().unwrap();
    let tls = ServerTls::new(&TlsConfig {
        cert_file: Some(p.path("rsa.pem")),
        key_file: Some(p.path("rsa.key")),
        ..TlsConfig::default()
    })
    .unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let (sent, wait_sent) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || -> Result<()> {
        let (s, peer) = l.accept().unwrap();
        let sock = Socket::from(s);
        sock.set_nonblocking(true).unwrap();
        let sess = TlsSession::server(&tls, Some(peer), Vec::new())?;
        sess.handshake(&sock, soon(), &NoInterrupt)?;
        wait_go.recv().unwrap();
        // Three records, in the client's socket before it reads one byte.
        for part in [b"abc", b"def", b"ghi"] {
            sess.write_all(&sock, part, soon(), &NoInterrupt)?;
        }
        sent.send(()).unwrap();
        let mut buf = [0u8; 16];
        while sess.read(&sock, &mut buf, soon(), &NoInterrupt)? > 0 {}
        Ok(())
    });
    rt().block_on(async {
        let c = plain(addr).await;
        c.start_tls_client(&client_tls(), "localhost", in_secs(10))
            .await
            .unwrap();
        go.send(()).unwrap();
        wait_sent.recv().unwrap();
        let tc = c.lend().unwrap();
        // One byte: rustls decrypts what arrived and keeps the rest.
        assert_eq!(tc.recv(1, &NoInterrupt).unwrap(), b"a");
        c.restore(tc, b"").unwrap();
        assert_eq!(c.buffered(), 8);
        assert_eq!(c.recv_exact(8).await.unwrap(), b"bcdefghi");
        c.close();
    });
    server.join().unwrap().unwrap();
}
