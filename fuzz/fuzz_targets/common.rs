//! Helpers the targets share: chunk boundaries from a seed, and the check
//! that an error is a bad-argument error naming the argument.
#![allow(dead_code)]

use socketkit::error::Error;

/// Chunk sizes (1..=max) covering `len` bytes, from a tiny xorshift seeded
/// by the input, so libFuzzer explores boundaries through one seed byte.
pub fn chunks(len: usize, seed: u8, max: usize) -> Vec<usize> {
    let mut x = u32::from(seed) | 0x9e37_0000;
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x as usize % max.max(1) + 1).min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// Every parse error is `InvalidArgument` naming `arg` (ValueError in Python).
pub fn names_arg(e: &Error, arg: &str) {
    match e {
        Error::InvalidArgument { arg: a, message } => {
            assert_eq!(*a, arg, "wrong argument named: {message}");
            assert!(!message.is_empty());
        }
        other => panic!("not a bad-argument error: {other:?}"),
    }
}

/// Split `data` at its first 0 byte (or at the end).
pub fn split0(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A connection whose peer has sent `reply` and closed its sending side (a
/// Unix socket pair: no port, no TCP, the same reads and waits). The peer
/// end is returned so what the client sends has somewhere to go.
pub fn replied(reply: &[u8]) -> (socketkit::tcp::TcpConnection, socket2::Socket) {
    use socket2::{Domain, Socket, Type};
    use std::io::Write;
    let (ours, mut peer) = Socket::pair(Domain::UNIX, Type::STREAM, None).expect("socketpair");
    peer.set_nonblocking(true).unwrap();
    // Whatever fits the socket buffer (~200 KiB, more than any input).
    let _ = peer.write_all(reply);
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    ours.set_nonblocking(true).unwrap();
    let addr = "127.0.0.1:9".parse().unwrap();
    let conn = socketkit::tcp::TcpConnection::connected(
        ours,
        addr,
        Some(std::time::Duration::from_secs(5)),
    );
    (conn, peer)
}
