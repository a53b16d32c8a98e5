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
    /// Per host, how long its name took to resolve (`None` for an IP
    /// literal); empty when not measured.
    pub resolve_times: Vec<Option<Duration>>,
}

impl Plan {
    /// How long the host of target `t` took to resolve.
    pub fn resolve_time(&self, t: usize) -> Option<Duration> {
        let h = self.targets.get(t)?.0 as usize;
        self.resolve_times.get(h).copied().flatten()
    }

    /// One target per address: a target whose host has several addresses
    /// becomes one target each (same label), in order (`each_address=True`).
    pub fn each_address(self) -> Plan {
        let mut out = Plan::default();
        let mut split: Vec<Vec<u32>> = Vec::with_capacity(self.hosts.len());
        for (h, host) in self.hosts.iter().enumerate() {
            let rt = self.resolve_times.get(h).copied().flatten();
            let mut ids = Vec::new();
            match &host.addrs {
                Ok(addrs) if addrs.len() > 1 => {
                    for ip in addrs {
                        ids.push(out.hosts.len() as u32);
                        out.hosts.push(HostEntry {
                            label: host.label.clone(),
                            addrs: Ok(vec![*ip]),
                        });
                        out.resolve_times.push(rt);
                    }
                }
                _ => {
                    ids.push(out.hosts.len() as u32);
                    out.hosts.push(host.clone());
                    out.resolve_times.push(rt);
                }
            }
            split.push(ids);
        }
        for &(h, port) in &self.targets {
            for &nh in &split[h as usize] {
                out.targets.push((nh, port));
            }
        }
        out
    }

    /// The per-address jobs: (target index, address). A target's jobs are
    /// next to each other, in its host's address order (the combiner
    /// relies on both). `pace` is asked as it goes: a plan may hold millions.
    pub fn jobs(
        &self,
        pace: &mut crate::probe::Pacer<'_>,
    ) -> crate::error::Result<Vec<(u32, SocketAddr)>> {
        let mut jobs = Vec::with_capacity(self.targets.len());
        for (i, &(h, port)) in self.targets.iter().enumerate() {
            pace.tick()?;
            if let Ok(addrs) = &self.hosts[h as usize].addrs {
                for ip in addrs {
                    jobs.push((i as u32, SocketAddr::new(*ip, port)));
                }
            }
        }
        Ok(jobs)
    }
}

/// Which addresses a probe may use: `family=`, `source_address=`, and
/// `each_address=` (one result per address instead of per target).
#[derive(Debug, Clone, Copy, Default)]
pub struct AddrControl {
    pub family: crate::addr::Family,
    pub source: Option<SocketAddr>,
    pub each_address: bool,
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
    /// The local address every connect is bound to (`source_address=`).
    pub source: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Some(Duration::from_secs_f64(crate::defaults::CHECK_TIMEOUT)),
            concurrency: crate::defaults::CHECK_CONCURRENCY,
            rate: None,
            workers: None,
            source: None,
        }
    }
}

/// How long each phase of one check took (`None`: the phase did not run,
/// or its time is not known).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    pub resolve: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    pub dialogue: Option<Duration>,
    pub total: Option<Duration>,
}

impl Timings {
    /// A connect-only probe: resolution and the handshake; the total is
    /// their sum when the connect got an answer.
    pub fn connect_only(resolve: Option<Duration>, rtt: Option<Duration>) -> Timings {
        Timings {
            resolve,
            connect: rtt,
            total: rtt.map(|r| r + resolve.unwrap_or_default()),
            ..Timings::default()
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
