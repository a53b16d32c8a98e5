//! Request/response load generator: `loadgen HOST PORT CONNS SECONDS [SIZE]`.
//!
//! CONNS threads, one connection each (TCP_NODELAY), each sending a
//! SIZE-byte request (default 64) and reading a reply of the same size,
//! back to back for SECONDS. Prints the total requests per second. A native
//! client, so the server's speed is what is measured (a Python client
//! saturates near 20k req/s on 2 cores). The request ends in `\n`, so
//! line-framed servers see one message per request.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen HOST PORT CONNS SECONDS [SIZE]");
        std::process::exit(2);
    }
    let addr = format!("{}:{}", args[1], args[2]);
    let conns: usize = args[3].parse().expect("CONNS");
    let secs: f64 = args[4].parse().expect("SECONDS");
    let size: usize = args.get(5).map_or(64, |s| s.parse().expect("SIZE"));
    let done = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::new();
    for i in 0..conns {
        let (addr, done, total, errors, start) = (
            addr.clone(),
            done.clone(),
            total.clone(),
            errors.clone(),
            start.clone(),
        );
        handles.push(thread::spawn(move || {
            // A few tries: a server with a short backlog drops SYNs under
            // a burst of connects. A connection that never opens is counted
            // as an error (the thread still meets the start barrier).
            let conn = (0..5).find_map(|_| {
                TcpStream::connect(&addr)
                    .map_err(|_| thread::sleep(Duration::from_millis(100)))
                    .ok()
            });
            let Some(mut s) = conn else {
                errors.fetch_add(1, Ordering::Relaxed);
                start.wait();
                return;
            };
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut req = vec![b'a' + (i % 26) as u8; size];
            *req.last_mut().unwrap() = b'\n';
            let mut reply = vec![0u8; size];
            start.wait();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                if s.write_all(&req).is_err() || s.read_exact(&mut reply).is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                n += 1;
            }
            total.fetch_add(n, Ordering::Relaxed);
        }));
    }
    start.wait();
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs_f64(secs));
    done.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let n = total.load(Ordering::Relaxed);
    println!(
        "{:.0} {} {}",
        n as f64 / elapsed,
        n,
        errors.load(Ordering::Relaxed)
    );
}
