//! Tests of `udp::socket` (a file of their own: socket.rs is near the
//! 600-line limit).

use super::*;
use crate::wait::NoInterrupt;
use std::net::UdpSocket;

fn hp(h: &str, p: u16) -> HostPort {
    HostPort::new(h, p)
}

#[test]
fn sendto_recvfrom_round_trip() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let u = UdpSock::new(
        None,
        None,
        SocketOptions::default(),
        Some(Duration::from_secs(2)),
        &NoInterrupt,
    )
    .unwrap();
    assert_eq!(
        u.send_to(b"hi", &hp("127.0.0.1", port), &NoInterrupt)
            .unwrap(),
        2
    );
    let mut buf = [0u8; 10];
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi");
    peer.send_to(b"yo", from).unwrap();
    let (data, src) = u.recv_from(100, &NoInterrupt).unwrap();
    assert_eq!(data, b"yo");
    assert_eq!(src.port(), port);
}

#[test]
fn request_resends_until_answered() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 10];
        // Ignore the first datagram, answer the second.
        let _ = peer.recv_from(&mut buf).unwrap();
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        peer.send_to(&buf[..n], from).unwrap();
    });
    let u = UdpSock::new(
        None,
        Some(&hp("127.0.0.1", port)),
        SocketOptions::default(),
        None,
        &NoInterrupt,
    )
    .unwrap();
    let r = u
        .request(
            b"ping",
            None,
            Duration::from_millis(200),
            2,
            100,
            &NoInterrupt,
        )
        .unwrap();
    assert_eq!(r, b"ping");
    t.join().unwrap();
}

#[test]
fn connected_send_to_closed_port_is_refused() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let u = UdpSock::new(
        None,
        Some(&hp("127.0.0.1", port)),
        SocketOptions::default(),
        Some(Duration::from_secs(1)),
        &NoInterrupt,
    )
    .unwrap();
    u.send(b"x", &NoInterrupt).unwrap();
    let e = u.recv_from(10, &NoInterrupt).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e:?}");
}
