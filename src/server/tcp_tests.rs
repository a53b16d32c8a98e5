//! TcpServerCore in each mode, over plain TCP (TLS: `tls_tests.rs`).

use super::*;
use crate::server::{ConnOutcome, Outcome, ThreadHooks};
use crate::wait::NoInterrupt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn server(mode: Mode, limits: Limits) -> TcpServerCore {
    let s = TcpServerCore::bind(
        "127.0.0.1:0".parse().unwrap(),
        SocketOptions::default(),
        128,
        limits,
        mode,
        ThreadHooks::none(),
        None,
    )
    .unwrap();
    s.start().unwrap();
    s
}

fn client(s: &TcpServerCore) -> TcpStream {
    let c = TcpStream::connect(s.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

fn read_n(c: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    c.read_exact(&mut b).unwrap();
    b
}

/// Reads until EOF or reset: true if the server closed the connection.
fn closed_by_server(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match c.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

struct Upper;
impl MessageHandler for Upper {
    fn handle(&self, _: SocketAddr, msgs: &[Vec<u8>], _: usize) -> Vec<Outcome> {
        msgs.iter()
            .map(|m| match m.as_slice() {
                b"fail" => Outcome::Failed,
                b"quiet" => Outcome::NoReply,
                _ => Outcome::Reply(m.to_ascii_uppercase()),
            })
            .collect()
    }
}

fn message_mode(framing: Framing) -> Mode {
    Mode::Message {
        handler: Arc::new(Upper),
        framing,
    }
}

#[test]
fn echo_mode_echoes_and_stops() {
    let s = server(Mode::Echo, Limits::default());
    let mut c = client(&s);
    c.write_all(b"hello").unwrap();
    assert_eq!(read_n(&mut c, 5), b"hello");
    s.stop(Duration::from_secs(1));
    assert!(closed_by_server(&mut c));
    assert!(TcpStream::connect(s.local_addr()).is_err());
    assert_eq!(s.stats().snapshot().bytes_out, 5);
}

#[test]
fn line_messages_pipelined_and_failures_close() {
    let s = server(message_mode(Framing::Line), Limits::default());
    let mut c = client(&s);
    c.write_all(b"ab\nquiet\ncd\n").unwrap();
    assert_eq!(read_n(&mut c, 6), b"AB\nCD\n");
    c.write_all(b"fail\n").unwrap();
    assert!(closed_by_server(&mut c));
    let mut c2 = client(&s);
    c2.write_all(b"ok\n").unwrap();
    assert_eq!(read_n(&mut c2, 3), b"OK\n");
    s.stop(Duration::from_secs(1));
    assert_eq!(s.stats().snapshot().handler_errors, 1);
}

#[test]
fn length_frames_and_max_message() {
    let limits = Limits {
        max_message: 8,
        ..Limits::default()
    };
    let s = server(message_mode(Framing::Length), limits);
    let mut c = client(&s);
    c.write_all(&[0, 0, 0, 3, b'a', b'b', b'c']).unwrap();
    assert_eq!(read_n(&mut c, 7), [0, 0, 0, 3, b'A', b'B', b'C']);
    let mut big = client(&s);
    big.write_all(&[0, 0, 0, 9]).unwrap();
    assert!(closed_by_server(&mut big));
    c.write_all(&[0, 0, 0, 1, b'z']).unwrap();
    assert_eq!(read_n(&mut c, 5), [0, 0, 0, 1, b'Z']);
    s.stop(Duration::from_secs(1));
}

/// Blocks on "slow" until released; echoes everything else.
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);
impl MessageHandler for Gate {
    fn handle(&self, _: SocketAddr, msgs: &[Vec<u8>], _: usize) -> Vec<Outcome> {
        if msgs.iter().any(|m| m == b"slow") {
            let (open, cv) = &*self.0;
            let g = lock(open);
            let _g = cv.wait_while(g, |open| !*open).unwrap();
        }
        msgs.iter().map(|m| Outcome::Reply(m.clone())).collect()
    }
}

#[test]
fn a_blocked_handler_leaves_the_other_connections_served() {
    for _ in 0..5 {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let mode = Mode::Message {
            handler: Arc::new(Gate(gate.clone())),
            framing: Framing::Line,
        };
        let s = server(mode, Limits::default());
        let mut slow = client(&s);
        slow.write_all(b"slow\n").unwrap();
        let t0 = Instant::now();
        while s.stats().snapshot().bytes_in < 5 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut fast: Vec<TcpStream> = (0..20).map(|_| client(&s)).collect();
        for (i, c) in fast.iter_mut().enumerate() {
            c.write_all(format!("{i}\n").as_bytes()).unwrap();
        }
        for (i, c) in fast.iter_mut().enumerate() {
            let want = format!("{i}\n");
            assert_eq!(read_n(c, want.len()), want.as_bytes());
        }
        *lock(&gate.0) = true;
        gate.1.notify_all();
        assert_eq!(read_n(&mut slow, 5), b"slow\n");
        s.stop(Duration::from_secs(1));
    }
}

#[test]
fn max_connections_rejects_and_idle_closes() {
    let limits = Limits {
        max_connections: 2,
        idle_timeout: Some(Duration::from_millis(200)),
        ..Limits::default()
    };
    let s = server(Mode::Echo, limits);
    let mut a = client(&s);
    let mut b = client(&s);
    a.write_all(b"x").unwrap();
    b.write_all(b"y").unwrap();
    assert_eq!(read_n(&mut a, 1), b"x");
    assert_eq!(read_n(&mut b, 1), b"y");
    let mut third = client(&s);
    assert!(closed_by_server(&mut third));
    let start = Instant::now();
    assert!(closed_by_server(&mut a));
    assert!(start.elapsed() < Duration::from_secs(3));
    s.stop(Duration::from_secs(1));
    assert_eq!(s.stats().snapshot().rejected, 1);
}

struct EchoLines;
impl ConnHandler for EchoLines {
    fn handle(&self, conn: TcpConnection, _: SocketAddr, _: &StopSignal) -> ConnOutcome {
        loop {
            match conn.recv_line(1024, &NoInterrupt) {
                Ok(l) if l.is_empty() => return ConnOutcome::Done,
                Ok(l) if l == b"boom\n" => return ConnOutcome::Failed,
                Ok(l) => {
                    if conn.send_all(&l, &NoInterrupt).is_err() {
                        return ConnOutcome::Done;
                    }
                }
                Err(_) => return ConnOutcome::Done,
            }
        }
    }
}

#[test]
fn handler_mode_serves_counts_and_stop_closes_blocked_handlers() {
    let s = server(Mode::Handler(Arc::new(EchoLines)), Limits::default());
    let mut c = client(&s);
    c.write_all(b"hi\n").unwrap();
    assert_eq!(read_n(&mut c, 3), b"hi\n");
    let mut bad = client(&s);
    bad.write_all(b"boom\n").unwrap();
    assert!(closed_by_server(&mut bad));
    // `c`'s handler is blocked in recv: stop must close it and join.
    s.stop(Duration::from_millis(100));
    assert!(closed_by_server(&mut c));
    let st = s.stats().snapshot();
    assert_eq!((st.accepted, st.active, st.handler_errors), (2, 0, 1));
    assert!(st.bytes_in >= 8 && st.bytes_out >= 3, "{st:?}");
}

#[test]
fn accept_mode_and_stop_wakes_accept() {
    let s = Arc::new(server(Mode::Accept, Limits::default()));
    let _c = client(&s);
    let (conn, peer) = s.accept(None, &NoInterrupt).unwrap();
    assert_eq!(conn.peer_addr(), peer);
    let s2 = s.clone();
    let t = std::thread::spawn(move || s2.accept(None, &NoInterrupt).map(|_| ()));
    std::thread::sleep(Duration::from_millis(20));
    s.stop(Duration::from_secs(1));
    assert!(matches!(t.join().unwrap(), Err(Error::Stopped)));
    assert!(s.start().is_err());
    s.wait_stopped(&NoInterrupt).unwrap();
}
