//! The UDP server: one thread receives datagrams, runs the handler (or
//! echoes) and sends the reply to the sender. Same lifecycle as TCP.

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

pub struct UdpServerCore {
    sock: Mutex<Option<Arc<UdpSocket>>>,
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
            sock: Mutex::new(Some(Arc::new(s.into()))),
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
            let sock = lock(&self.sock).clone().ok_or(Error::Stopped)?;
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
    /// the socket, join the thread (unless the caller is that thread).
    fn stop(&self, timeout: Duration) {
        self.stop.trigger();
        let Some(handle) = self.life.begin_stop(timeout) else {
            return;
        };
        if let Some(h) = handle {
            let deadline = Deadline::after(Some(timeout));
            if h.thread().id() != std::thread::current().id() {
                while !h.is_finished() && !deadline.expired() {
                    std::thread::sleep(Duration::from_millis(2));
                }
                if h.is_finished() {
                    let _ = h.join();
                }
            }
        }
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

fn serve(sock: &UdpSocket, stop: &StopSignal, stats: &UdpStats, mode: &UdpMode) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.is_set() {
        match sock.recv_from(&mut buf) {
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
                        // A full send buffer drops the reply, as UDP may.
                        if sock.send_to(&r, peer).is_ok() {
                            Stats::add(&stats.datagrams_out, 1);
                            Stats::add(&stats.bytes_out, r.len() as u64);
                        }
                    }
                    Outcome::NoReply => {}
                    Outcome::Failed => Stats::add(&stats.handler_errors, 1),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stop.wait_readable(sock.as_raw_fd(), SLICE);
            }
            // ICMP errors queued by an earlier reply, EINTR: go on.
            Err(_) => {}
        }
    }
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
