use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use super::connect::connect;
use super::tcp::AsyncConn;
use super::udp::AsyncUdp;
use crate::addr::HostPort;
use crate::error::Error;
use crate::options::SocketOptions;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn pair(l: &TcpListener) -> (Arc<AsyncConn>, std::net::TcpStream) {
    let port = l.local_addr().unwrap().port();
    let (s, peer) = connect(
        &HostPort::new("127.0.0.1", port),
        &SocketOptions::default(),
        None,
        Some(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let (server, _) = l.accept().unwrap();
    (Arc::new(AsyncConn::new(s, peer, None).unwrap()), server)
}

#[test]
fn framing_over_one_buffer() {
    rt().block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, mut peer) = pair(&l).await;
        peer.write_all(b"one\ntwo;rest").unwrap();
        drop(peer);
        assert_eq!(c.recv_until(b"\n", 100, true).await.unwrap(), b"one\n");
        assert_eq!(c.recv_until(b";", 100, false).await.unwrap(), b"two;");
        assert_eq!(c.recv_exact(2).await.unwrap(), b"re");
        match c.recv_exact(5).await {
            Err(Error::Closed { partial, .. }) => assert_eq!(partial, b"st"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.recv(10).await.unwrap(), b"");
    });
}

#[test]
fn a_cancelled_read_keeps_its_bytes() {
    rt().block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, mut peer) = pair(&l).await;
        peer.write_all(b"abc").unwrap();
        let r =
            tokio::time::timeout(Duration::from_millis(50), c.recv_until(b"\n", 100, true)).await;
        assert!(r.is_err());
        peer.write_all(b"\n").unwrap();
        assert_eq!(c.recv_until(b"\n", 100, true).await.unwrap(), b"abc\n");
    });
}

#[test]
fn close_wakes_a_pending_read() {
    rt().block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (c, _peer) = pair(&l).await;
        let c2 = c.clone();
        let pending = tokio::spawn(async move { c2.recv(10).await });
        tokio::task::yield_now().await;
        assert!(c.close());
        assert!(matches!(pending.await.unwrap(), Err(Error::ClosedSocket)));
        assert_eq!(c.fileno(), -1);
    });
}

#[test]
fn refused_lists_the_attempt() {
    rt().block_on(async {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        match connect(
            &HostPort::new("127.0.0.1", port),
            &SocketOptions::default(),
            None,
            Some(Duration::from_secs(2)),
        )
        .await
        {
            Err(Error::Connect { attempts, .. }) => {
                assert_eq!(attempts.len(), 1);
                assert_eq!(attempts[0].error.raw_os_error(), Some(libc::ECONNREFUSED));
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn udp_request_and_close() {
    rt().block_on(async {
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = echo.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = echo.recv_from(&mut buf).unwrap();
            echo.send_to(&buf[..n], from).unwrap();
        });
        let to = HostPort::new("127.0.0.1", addr.port());
        let u = AsyncUdp::create(None, Some(&to), SocketOptions::default(), None)
            .await
            .unwrap();
        let got = u
            .request(b"hi", None, Duration::from_secs(2), 0, 64)
            .await
            .unwrap();
        assert_eq!(got, b"hi");
        t.join().unwrap();
        let u = Arc::new(u);
        let u2 = u.clone();
        let pending = tokio::spawn(async move { u2.recv_from(64).await });
        tokio::task::yield_now().await;
        assert!(u.close());
        assert!(matches!(pending.await.unwrap(), Err(Error::ClosedSocket)));
    });
}
