//! `TcpServer.echo()` without TLS: handler mode's thread per connection
//! (accept thread, limits, stop, stats: [`super::threaded`]), each thread
//! writing back what it reads with plain blocking calls, for the first
//! `ECHO_THREADS` connections at once; the ones past them are handed to an
//! event loop (`evented`, [`super::threaded::Overflow`]).
//!
//! Why threads first: an echo runs no caller code, so nothing about it
//! needs an event loop, and a blocked `read` is the cheapest wait there is.
//! Measured on this 2-core VM (2026-11-27, `python benches/server.py`):
//! the loop paid an `epoll_wait` per message on one connection (3 syscalls
//! per round trip against 2) and, with 50 connections of client threads,
//! cross-CPU wake-ups where blocking pairs hand over on one CPU: it served
//! 0.44x-0.47x the std::net thread-per-connection echo (124k-140k vs
//! 296k-318k req/s, 6.4 against 3.1 us of server CPU per request); threads
//! serve 0.98x. Why the loop past them: 1,000 connections of one asyncio
//! client (`benches/aio.py`) wake 1,000 threads one by one where the loop
//! takes their messages in batches: threads served ~0.75x the loop there.
//! A TLS echo stays on the loop (`evented_tls`), whose batched record I/O
//! its bulk benchmark rests on.
//!
//! Stop needs no poll: `threaded`'s stop shuts every socket down for
//! reading, so a blocked `read` returns EOF at once; `idle_timeout` is the
//! socket's own receive and send timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::defaults::ECHO_MAX_MESSAGE;
use crate::tcp::TcpConnection;

use super::{ConnHandler, ConnOutcome, Stats, StopSignal};

/// Counts bytes as they pass, as the other modes' stats do (handler mode
/// reads TCP_INFO once the connection ends).
pub(super) struct Echo(pub(super) Arc<Stats>);

impl ConnHandler for Echo {
    fn handle(&self, conn: TcpConnection, _peer: SocketAddr, _stop: &StopSignal) -> ConnOutcome {
        let Ok(sock) = conn.socket() else {
            return ConnOutcome::Done;
        };
        let idle = conn.timeout();
        if sock.set_nonblocking(false).is_err()
            || sock.set_read_timeout(idle).is_err()
            || sock.set_write_timeout(idle).is_err()
        {
            return ConnOutcome::Done;
        }
        // Pages of it no read reached are never touched, so never resident.
        let mut buf = vec![0u8; ECHO_MAX_MESSAGE];
        let mut s = &*sock;
        loop {
            match s.read(&mut buf) {
                // EOF (the client's, or stop's shutdown), a reset, or idle
                // past idle_timeout (EAGAIN from SO_RCVTIMEO): the
                // connection ends, as the evented echo's did.
                Ok(0) => break,
                Ok(n) => {
                    Stats::add(&self.0.bytes_in, n as u64);
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    Stats::add(&self.0.bytes_out, n as u64);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        ConnOutcome::Done
    }

    fn counts_bytes(&self) -> bool {
        true
    }
}
