//! The UDP server: one thread receives datagrams, runs the handler (or
//! echoes) and sends the reply to the sender. Same lifecycle as TCP.
//!
//! The thread takes the socket from a lock shared with `stop()` for each
//! receive and each send, never while the handler runs: a `stop()` whose
//! timeout passes while a handler is stuck closes the socket (the port is
//! free when `stop()` returns), and the handler's late reply, finding no
//! socket, is not sent.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Phase, Result};
use crate::options::{Proto, SocketOptions};
use crate::wait::{Deadline, Interrupt, SLICE};

use super::lifecycle::Lifecycle;
use super::listener::{self, StopSignal};
use super::stats::UdpStats;
use super::{spawn, DatagramHandler, Outcome, Server, Stats, ThreadHooks};

/// The largest datagram received whole (the IPv4/IPv6 UDP maximum).
use crate::udp::MAX_DATAGRAM;

pub enum UdpMode {
    Handler(Arc<dyn DatagramHandler>),
    Echo,
    /// Receive, count, answer nothing (RFC 863).
    Discard,
}

/// The server's socket until `stop()` (or the serving thread, when it ends
/// by itself) closes it.
type Shared = Arc<Mutex<Option<UdpSocket>>>;

pub struct UdpServerCore {
    sock: Shared,
    local: SocketAddr,
    stop: Arc<StopSignal>,
    stats: Arc<UdpStats>,
    mode: Arc<UdpMode>,
    hooks: ThreadHooks,
    life: Lifecycle<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl UdpServerCore {
    pub fn bind(
        addr: SocketAddr,
        mut opts: SocketOptions,
        mode: UdpMode,
        hooks: ThreadHooks,
    ) -> Result<Self> {
        opts.validate(Proto::Udp)?;
        if opts.reuse_address.is_none() {
            opts.reuse_address = Some(true);
        }
        let s = listener::bind_udp(addr, &opts)?;
        let local = listener::local_addr(&s)?;
        Ok(UdpServerCore {
            sock: Arc::new(Mutex::new(Some(s.into()))),
            local,
            stop: Arc::new(StopSignal::new()?),
            stats: Arc::new(UdpStats::default()),
            mode: Arc::new(mode),
            hooks,
            life: Lifecycle::default(),
        })
    }

    pub fn stats(&self) -> &UdpStats {
        &self.stats
    }

    pub fn is_echo(&self) -> bool {
        matches!(*self.mode, UdpMode::Echo)
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_set()
    }
}

impl Server for UdpServerCore {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn fileno(&self) -> i32 {
        lock(&self.sock).as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    fn state_name(&self) -> &'static str {
        self.life.name()
    }

    /// Start the receiving thread; idempotent.
    fn start(&self) -> Result<()> {
        self.life.start(|| {
            if lock(&self.sock).is_none() {
                return Err(Error::Stopped);
            }
            let sock = self.sock.clone();
            let stop = self.stop.clone();
            let stats = self.stats.clone();
            let mode = self.mode.clone();
            spawn("socketkit-udp", &self.hooks, move || {
                serve(&sock, &stop, &stats, &mode)
            })
            .map_err(|e| Error::io(Phase::Bind, None, e))
        })
    }

    /// Block until stopped (by `stop()` elsewhere). Interruptible.
    fn wait_stopped(&self, intr: &dyn Interrupt) -> Result<()> {
        self.stop.wait(Deadline::NEVER, intr)?;
        self.life.wait_stopped(intr)
    }

    /// Stop receiving, let a running handler finish within `timeout`, close
    /// the socket, join the thread. Called by the handler itself, the
    /// socket stays for its reply and the thread closes it as it ends.
    fn stop(&self, timeout: Duration) {
        self.stop.trigger();
        let Some(handle) = self.life.begin_stop(timeout) else {
            return;
        };
        if let Some(h) = handle {
            if h.thread().id() == std::thread::current().id() {
                self.stop.close();
                self.life.finish();
                return;
            }
            let deadline = Deadline::after(Some(timeout));
            while !h.is_finished() && !deadline.expired() {
                std::thread::sleep(Duration::from_millis(2));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        // A handler stuck past the deadline finds no socket when it returns.
        lock(&self.sock).take();
        self.stop.close();
        self.life.finish();
    }

    fn stats_items(&self) -> Vec<(&'static str, u64)> {
        self.stats.snapshot().items().to_vec()
    }
}

impl Drop for UdpServerCore {
    fn drop(&mut self) {
        // Wake the thread; it ends by itself (see TcpServerCore::drop).
        self.stop.trigger();
    }
}

fn serve(sock: &Shared, stop: &StopSignal, stats: &UdpStats, mode: &UdpMode) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.is_set() {
        let received = {
            let s = lock(sock);
            let Some(s) = s.as_ref() else {
                return;
            };
            s.recv_from(&mut buf).map_err(|e| (e, s.as_raw_fd()))
        };
        match received {
            Ok((n, peer)) => {
                Stats::add(&stats.datagrams_in, 1);
                Stats::add(&stats.bytes_in, n as u64);
                let reply = match mode {
                    UdpMode::Echo => Outcome::Reply(buf[..n].to_vec()),
                    UdpMode::Handler(h) => h.handle(&buf[..n], peer),
                    UdpMode::Discard => Outcome::NoReply,
                };
                match reply {
                    Outcome::Reply(r) => {
                        let sent = match lock(sock).as_ref() {
                            Some(s) => s.send_to(&r, peer),
                            None => return, // stopped while the handler ran
                        };
                        match sent {
                            Ok(_) => {
                                Stats::add(&stats.datagrams_out, 1);
                                Stats::add(&stats.bytes_out, r.len() as u64);
                            }
                            Err(e) if is_handlers_fault(&e) => {
                                Stats::add(&stats.handler_errors, 1);
                                if let UdpMode::Handler(h) = mode {
                                    h.reply_failed(peer, r.len(), &e);
                                }
                            }
                            // A full send buffer drops the reply, as UDP may.
                            Err(_) => {}
                        }
                    }
                    Outcome::NoReply => {}
                    Outcome::Failed => Stats::add(&stats.handler_errors, 1),
                }
            }
            Err((e, fd)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Polled without the lock: if stop() closes the fd meanwhile,
                // the stop signal (or POLLNVAL) ends the wait.
                stop.wait_readable(fd, SLICE);
            }
            // ICMP errors queued by an earlier reply, EINTR: go on.
            Err(_) => {}
        }
    }
    // Ended by stop() from the handler, or by the server's drop: the port
    // closes now.
    lock(sock).take();
}

/// A reply the socket refuses because of what the handler returned (over
/// the largest datagram), as opposed to a moment's congestion or a
/// destination the network cannot reach, which UDP may drop.
fn is_handlers_fault(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMSGSIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ThreadHooks;

    #[test]
    fn echo_answers_and_stops() {
        let srv = UdpServerCore::bind(
            "127.0.0.1:0".parse().unwrap(),
            SocketOptions::default(),
            UdpMode::Echo,
            ThreadHooks::none(),
        )
        .unwrap();
        srv.start().unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"ping", srv.local_addr()).unwrap();
        let mut b = [0u8; 16];
        let (n, _) = c.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"ping");
        srv.stop(Duration::from_secs(1));
        assert_eq!(srv.state_name(), "stopped");
        assert_eq!(srv.stats().snapshot().datagrams_out, 1);
        assert_eq!(srv.fileno(), -1);
    }
}
