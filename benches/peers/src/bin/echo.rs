//! Minimal std::net echo server: one thread per TCP connection, plus a UDP
//! echo on the same port number. Prints the port, then serves until stdin
//! closes (so the bench that started it never leaves it behind).
//!
//! `echo accept-close` instead accepts and closes at once: the peer for
//! connect-rate runs.
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::thread;

fn main() {
    let accept_close = std::env::args().nth(1).as_deref() == Some("accept-close");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let port = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind(("127.0.0.1", port)).ok();
    println!("{port}");
    if let Some(u) = udp {
        thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok((n, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], from);
            }
        });
    }
    thread::spawn(|| {
        let mut sink = [0u8; 1];
        let _ = std::io::stdin().read(&mut sink);
        std::process::exit(0);
    });
    for conn in listener.incoming() {
        let Ok(mut c) = conn else { continue };
        if accept_close {
            drop(c);
            continue;
        }
        let _ = c.set_nodelay(true);
        thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}
