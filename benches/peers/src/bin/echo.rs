//! Minimal std::net echo server: one thread per TCP connection, plus a UDP
//! echo on the same port number. Prints the port, then serves until stdin
//! closes (so the bench that started it never leaves it behind).
//!
//! `echo accept-close` instead accepts and closes at once: the peer for
//! connect-rate runs.
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::thread;

extern "C" {
    fn listen(fd: i32, backlog: i32) -> i32;
}

fn main() {
    let accept_close = std::env::args().nth(1).as_deref() == Some("accept-close");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    // std listens with a backlog of 128: a connect-rate run that outpaces
    // this thread for a few ms overflowed it, and every dropped SYN cost the
    // client a 1 s retransmit. Listening again raises it to somaxconn.
    // SAFETY: listen() on a socket this process owns.
    unsafe { listen(listener.as_raw_fd(), 4096) };
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
