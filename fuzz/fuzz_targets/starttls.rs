//! STARTTLS presets' reply parsing (SMTP/FTP numeric replies, IMAP tagged
//! answers, POP3 +OK, PostgreSQL's one byte) against any server answer:
//! never a panic, never a wait on a closed peer, and a go-ahead only when
//! the answer really says so.
#![no_main]

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use socketkit::error::Error;
use socketkit::service::starttls::{negotiate, StartTlsProto};
use socketkit::wait::{Deadline, NoInterrupt};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, reply)) = data.split_first() else {
        return;
    };
    let proto = StartTlsProto::ALL[usize::from(sel) % StartTlsProto::ALL.len()];
    let (conn, _peer) = common::replied(reply);
    let started = Instant::now();
    let r = negotiate(
        &conn,
        proto,
        Deadline::after(Some(Duration::from_secs(10))),
        &NoInterrupt,
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited on a closed peer"
    );
    match r {
        Ok(()) => {
            // A numeric reply's code is its last line's (lines of a
            // multi-line reply are not required to agree), so a go-ahead
            // needs these lines somewhere in the answer.
            let lines: Vec<&[u8]> = reply.split(|&b| b == b'\n').collect();
            let has = |code: &[u8]| lines.iter().any(|l| l.starts_with(code));
            let go = match proto {
                StartTlsProto::Smtp => has(b"220") && has(b"250"),
                StartTlsProto::Ftp => has(b"220") && has(b"234"),
                StartTlsProto::Pop3 => reply.starts_with(b"+OK") && lines.len() > 2,
                StartTlsProto::Imap => reply.starts_with(b"* ") && has(b"a1 "),
                StartTlsProto::Postgres => reply.first() == Some(&b'S'),
            };
            assert!(go, "{proto:?} went ahead on {reply:?}");
        }
        Err(Error::Tls { .. }) | Err(Error::LimitExceeded { .. }) => {}
        Err(e) => panic!("{proto:?}: unexpected error {e:?}"),
    }
});
