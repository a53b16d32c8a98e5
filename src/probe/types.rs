//! The probes' words: the state of a port, the outcome of one probe, what
//! to probe (a plan), how (a config), and one finished target (a result).
//! Every probe (check, scan, tcping, wait_for, udp_probe) speaks them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The state of one probed port, with nmap's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Closed,
    Filtered,
    Error,
    /// UDP only: no answer and no ICMP unreachable.
    OpenFiltered,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Closed => "closed",
            State::Filtered => "filtered",
            State::Error => "error",
            State::OpenFiltered => "open|filtered",
        }
    }
}

/// The result of one probe of one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: State,
    /// Time from `connect()` to the answer (open or closed).
    pub rtt: Option<Duration>,
    /// Why, for errors and for filtered results an ICMP error explains.
    /// A plain refusal or silence carries none: a scan of 65,535 closed
    /// ports should not format 65,535 copies of "Connection refused".
    pub error: Option<String>,
}

impl Outcome {
    pub fn new(state: State, rtt: Option<Duration>, error: Option<String>) -> Self {
        Outcome { state, rtt, error }
    }

    /// Why this was not a reply, in words, also when `error` is empty:
    /// what tcping lists per lost ping and wait_for per target still down.
    pub fn reason(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        match self.state {
            State::Closed => {
                crate::probe::os_text(&std::io::Error::from_raw_os_error(libc::ECONNREFUSED))
            }
            State::Filtered => "timed out".into(),
            s => s.as_str().into(),
        }
    }
}

/// A host as the user named it and the addresses it resolved to (or why
/// it did not resolve).
#[derive(Debug, Clone)]
pub struct HostEntry {
    pub label: String,
    pub addrs: std::result::Result<Vec<IpAddr>, String>,
}

/// What to probe: hosts, and (host, port) targets in input order. A target
/// whose host has several addresses is probed on each; it is open if any
/// address accepts.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub hosts: Vec<HostEntry>,
    pub targets: Vec<(u32, u16)>,
}

impl Plan {
    /// The per-address jobs: (target index, address).
    pub fn jobs(&self) -> Vec<(u32, SocketAddr)> {
        let mut jobs = Vec::with_capacity(self.targets.len());
        for (i, &(h, port)) in self.targets.iter().enumerate() {
            if let Ok(addrs) = &self.hosts[h as usize].addrs {
                for ip in addrs {
                    jobs.push((i as u32, SocketAddr::new(*ip, port)));
                }
            }
        }
        jobs
    }
}

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-connect timeout; `None` leaves it to the kernel (~2 min).
    pub timeout: Option<Duration>,
    /// Most connects in flight at once.
    pub concurrency: usize,
    /// Most new connects per second.
    pub rate: Option<f64>,
    /// Worker threads; `None` = one per CPU.
    pub workers: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Some(Duration::from_secs_f64(crate::defaults::CHECK_TIMEOUT)),
            concurrency: crate::defaults::CHECK_CONCURRENCY,
            rate: None,
            workers: None,
        }
    }
}

/// One finished target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetResult {
    pub target: usize,
    pub address: Option<SocketAddr>,
    pub outcome: Outcome,
}
