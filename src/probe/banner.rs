//! `banner`: connect, optionally send, and return what the service says
//! first.

use std::time::Duration;

use crate::addr::HostPort;
use crate::error::{try_reserve, Error, Result};
use crate::options::SocketOptions;
use crate::probe::plan::{resolve_deadline, resolve_target};
use crate::probe::types::AddrControl;
use crate::sock::{read_some, write_all};
use crate::tcp::connect::connect_addrs;
use crate::wait::{Deadline, Interrupt};

/// After the first bytes, keep reading while more arrive within this pause
/// (multi-line greetings such as SMTP's `220-` arrive in several segments).
pub const QUIET: Duration = Duration::from_millis(100);

/// The most one read asks for.
const CHUNK: usize = 64 * 1024;

/// Up to `max_bytes` of what `target` sends first (after `send`, if given)
/// within `timeout`. Silence gives an empty result; a failed connect is an
/// error.
pub fn banner(
    target: &HostPort,
    send: Option<&[u8]>,
    timeout: Option<Duration>,
    max_bytes: usize,
    ctl: &AddrControl,
    intr: &dyn Interrupt,
) -> Result<Vec<u8>> {
    let addrs = resolve_target(target, ctl, resolve_deadline(timeout), intr)?;
    let deadline = Deadline::after(timeout);
    let opts = SocketOptions::default();
    let (sock, peer) = connect_addrs(target, &addrs, &opts, ctl.source, deadline, intr)?;
    let peer = Some(peer);
    if let Some(data) = send {
        write_all(&sock, data, deadline, intr, peer.as_ref())?;
    }
    // max_bytes bounds the result, not an allocation: grow as bytes arrive.
    let mut out = Vec::new();
    let mut chunk = vec![0u8; max_bytes.min(CHUNK)];
    while out.len() < max_bytes {
        let room = (max_bytes - out.len()).min(chunk.len());
        let wait = if out.is_empty() {
            deadline
        } else {
            deadline.min(Deadline::after(Some(QUIET)))
        };
        match read_some(&sock, &mut chunk[..room], wait, intr, peer.as_ref()) {
            Ok(0) => break,
            Ok(n) => {
                try_reserve(&mut out, n)?;
                out.extend_from_slice(&chunk[..n]);
            }
            Err(Error::Timeout { .. }) => break,
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            // A reset after the greeting still leaves the greeting.
            Err(_) if !out.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn reads_a_greeting_and_answers_a_send() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            c.write_all(b"SSH-2.0-test\r\n").unwrap();
            let (mut c2, _) = l.accept().unwrap();
            let mut buf = [0u8; 5];
            c2.read_exact(&mut buf).unwrap();
            c2.write_all(b"pong").unwrap();
        });
        let hp = HostPort {
            host: "127.0.0.1".into(),
            port,
        };
        let t = Some(Duration::from_secs(2));
        assert_eq!(
            banner(&hp, None, t, 1024, &AddrControl::default(), &NoInterrupt).unwrap(),
            b"SSH-2.0-test\r\n"
        );
        assert_eq!(
            banner(
                &hp,
                Some(b"ping\n"),
                t,
                2,
                &AddrControl::default(),
                &NoInterrupt
            )
            .unwrap(),
            b"po"
        );
        server.join().unwrap();
    }
}
