//! HTTP/1.1 GET load generator: `httpload HOST PORT CONNS SECONDS PATH [MUST]`.
//!
//! CONNS threads, one keep-alive connection each, sending `GET PATH` back
//! to back for SECONDS and reading each answer (Content-Length or chunked
//! body). Prints `req/s answered failed errors`: an answer is a 200 whose
//! body contains MUST (default: anything); a connection the server closes
//! is reopened (counted in errors). A native client, so the two exporters'
//! speed is what is measured, not the client's.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// One response: (status, body), or None when the connection broke.
fn read_response(r: &mut BufReader<TcpStream>) -> Option<(u32, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u32 = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            length = v.parse::<usize>().ok();
        } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).ok()?;
            let n = usize::from_str_radix(line.trim_end().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length?, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some((status, body))
}

fn connect(addr: &str) -> Option<BufReader<TcpStream>> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_nodelay(true).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    Some(BufReader::new(s))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: httpload HOST PORT CONNS SECONDS PATH [MUST]");
        std::process::exit(2);
    }
    let addr = format!("{}:{}", args[1], args[2]);
    let conns: usize = args[3].parse().expect("CONNS");
    let secs: f64 = args[4].parse().expect("SECONDS");
    let req = format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", args[5], addr).into_bytes();
    let must = args.get(6).cloned().unwrap_or_default().into_bytes();
    let done = Arc::new(AtomicBool::new(false));
    let (ok, bad, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let start = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::new();
    for _ in 0..conns {
        let (addr, req, must, done, start) = (
            addr.clone(),
            req.clone(),
            must.clone(),
            done.clone(),
            start.clone(),
        );
        let (ok, bad, errors) = (ok.clone(), bad.clone(), errors.clone());
        handles.push(thread::spawn(move || {
            let mut conn = connect(&addr);
            start.wait();
            while !done.load(Ordering::Relaxed) {
                let Some(r) = conn.as_mut() else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(10));
                    conn = connect(&addr);
                    continue;
                };
                let answer = r
                    .get_mut()
                    .write_all(&req)
                    .ok()
                    .and_then(|_| read_response(r));
                match answer {
                    Some((200, body))
                        if must.is_empty() || body.windows(must.len()).any(|w| w == &must[..]) =>
                    {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        conn = connect(&addr);
                    }
                }
            }
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
    let n = ok.load(Ordering::Relaxed);
    println!(
        "{:.0} {} {} {}",
        n as f64 / elapsed,
        n,
        bad.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
}
