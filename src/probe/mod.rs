//! Ops probes: is it up (`check`), what is open (`scan`), how fast
//! (`tcping`), wait until it is up (`wait_for`), what does it say
//! (`banner`), and UDP (`udp_probe`). Plain Rust, no pyo3: `py/probe.rs`
//! converts arguments and results.

pub mod banner;
pub mod engine;
pub mod ping;
pub mod target;
pub mod udp;
pub mod waitfor;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use crate::addr::{happy_eyeballs_order, HostPort};
use crate::error::{Error, Result};
use crate::resolve::resolve;
use crate::wait::{Deadline, Interrupt, SLICE};

pub use engine::{Config, HostEntry, Outcome, Plan, State, TargetResult};
pub use target::HostSpec;

/// Most name lookups in flight at once during one call.
const MAX_RESOLVERS: usize = 32;

/// Names are resolved within the probe timeout, but never less than this:
/// a connect timeout of 0.2 s says nothing about how fast DNS answers.
pub const MIN_RESOLVE_TIME: Duration = Duration::from_secs(2);

/// An [`Interrupt`] that another thread trips: how the thread that talks
/// to Python (and sees Ctrl-C) stops helper threads.
#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    pub fn new() -> Self {
        Cancel(AtomicBool::new(false))
    }
    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Interrupt for Cancel {
    fn check(&self) -> Result<()> {
        if self.is_set() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// An OS error as people read it: "Connection refused", without Rust's
/// " (os error 111)" suffix.
pub fn os_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The deadline for resolving the names of one probe call.
pub fn resolve_deadline(timeout: Option<Duration>) -> Deadline {
    Deadline::after(timeout.map(|t| t.max(MIN_RESOLVE_TIME)))
}

/// Resolve several names at once (at most `MAX_RESOLVERS` lookups in
/// flight), each under `deadline`; addresses in Happy Eyeballs order.
/// A silent resolver cannot hold the call past the deadline, and `intr`
/// (Ctrl-C) stops it within a slice.
pub fn resolve_all(
    names: &[String],
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Vec<Result<Vec<IpAddr>>>> {
    let mut out: Vec<Option<Result<Vec<IpAddr>>>> = (0..names.len()).map(|_| None).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let names: Arc<Vec<String>> = Arc::new(names.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let cancel = Arc::new(Cancel::new());
    let (tx, rx) = mpsc::channel::<(usize, Result<Vec<IpAddr>>)>();
    for _ in 0..names.len().min(MAX_RESOLVERS) {
        let (names, next, stop, tx) = (names.clone(), next.clone(), cancel.clone(), tx.clone());
        let spawned = thread::Builder::new()
            .name("socketkit-resolve".into())
            .spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= names.len() || stop.is_set() {
                    return;
                }
                let r = resolve(&names[i], 0, deadline, &*stop).map(|addrs| {
                    happy_eyeballs_order(&addrs)
                        .into_iter()
                        .map(|a| a.ip())
                        .collect()
                });
                if tx.send((i, r)).is_err() {
                    return;
                }
            });
        if let Err(e) = spawned {
            cancel.set();
            return Err(Error::io(crate::error::Phase::Resolve, None, e));
        }
    }
    drop(tx);
    let mut left = names.len();
    while left > 0 {
        match rx.recv_timeout(SLICE / 2) {
            Ok((i, r)) => {
                out[i] = Some(r);
                left -= 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = intr.check() {
                    cancel.set();
                    return Err(e);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(out
        .into_iter()
        .zip(names.iter())
        .map(|(r, name)| {
            r.unwrap_or_else(|| {
                Err(Error::timeout(
                    crate::error::Phase::Resolve,
                    Some(name.clone()),
                ))
            })
        })
        .collect())
}

/// The text a failed lookup leaves in a result's `error`.
fn resolve_message(e: &Error) -> String {
    match e {
        Error::Resolve { host, message, .. } => format!("{message} (resolve {host})"),
        Error::Timeout { .. } => "name resolution timed out".to_string(),
        other => other.to_string(),
    }
}

/// A plan for `check`/`check_many`: one target per (host, port), names
/// resolved once each; a name that does not resolve makes its targets
/// results with state "error" instead of failing the call.
pub fn plan_targets(
    targets: &[HostPort],
    timeout: Option<Duration>,
    intr: &dyn Interrupt,
) -> Result<Plan> {
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut plan = Plan::default();
    let mut names: Vec<String> = Vec::new();
    let mut name_hosts: Vec<u32> = Vec::new();
    for t in targets {
        let h = match index.get(t.host.as_str()) {
            Some(&h) => h,
            None => {
                let h = plan.hosts.len() as u32;
                let addrs = match t.host.parse::<IpAddr>() {
                    Ok(ip) => Ok(vec![ip]),
                    Err(_) => {
                        names.push(t.host.clone());
                        name_hosts.push(h);
                        Ok(Vec::new())
                    }
                };
                plan.hosts.push(HostEntry {
                    label: t.host.clone(),
                    addrs,
                });
                index.insert(t.host.as_str(), h);
                h
            }
        };
        plan.targets.push((h, t.port));
    }
    let resolved = resolve_all(&names, resolve_deadline(timeout), intr)?;
    for (h, r) in name_hosts.into_iter().zip(resolved) {
        plan.hosts[h as usize].addrs = r.map_err(|e| resolve_message(&e));
    }
    Ok(plan)
}

/// A plan for `scan`: every host (names resolved first; a name that does
/// not resolve raises) times every port, host by host.
pub fn plan_scan(
    hosts: &[HostSpec],
    ports: &[u16],
    timeout: Option<Duration>,
    intr: &dyn Interrupt,
) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut name_hosts: Vec<u32> = Vec::new();
    for spec in hosts {
        match spec {
            HostSpec::Name(n) => {
                if seen.insert(n.clone(), ()).is_none() {
                    name_hosts.push(plan.hosts.len() as u32);
                    names.push(n.clone());
                    plan.hosts.push(HostEntry {
                        label: n.clone(),
                        addrs: Ok(Vec::new()),
                    });
                }
            }
            HostSpec::Addrs(ips) => {
                for ip in ips {
                    let label = ip.to_string();
                    if seen.insert(label.clone(), ()).is_none() {
                        plan.hosts.push(HostEntry {
                            label,
                            addrs: Ok(vec![*ip]),
                        });
                    }
                }
            }
        }
    }
    let resolved = resolve_all(&names, resolve_deadline(timeout), intr)?;
    for (h, r) in name_hosts.into_iter().zip(resolved) {
        plan.hosts[h as usize].addrs = Ok(r?);
    }
    plan.targets.reserve(plan.hosts.len() * ports.len());
    for h in 0..plan.hosts.len() as u32 {
        for &p in ports {
            plan.targets.push((h, p));
        }
    }
    Ok(plan)
}

/// The most probes one blocking `scan()` holds results for.
pub const MAX_SCAN_TARGETS: usize = 1 << 24;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;

    #[test]
    fn check_plan_dedups_hosts_and_keeps_bad_names() {
        let t = |h: &str, p| HostPort {
            host: h.into(),
            port: p,
        };
        let plan = plan_targets(
            &[
                t("127.0.0.1", 1),
                t("no-such-host.invalid", 2),
                t("127.0.0.1", 3),
            ],
            Some(Duration::from_secs(1)),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(plan.hosts.len(), 2);
        assert_eq!(plan.targets, vec![(0, 1), (1, 2), (0, 3)]);
        assert!(plan.hosts[1].addrs.is_err());
    }

    #[test]
    fn scan_plan_expands_hosts_times_ports() {
        let hosts = vec![
            target::parse_host_spec("hosts", "127.0.0.0/30").unwrap(),
            target::parse_host_spec("hosts", "localhost").unwrap(),
            target::parse_host_spec("hosts", "127.0.0.1").unwrap(),
        ];
        let plan = plan_scan(
            &hosts,
            &[22, 80],
            Some(Duration::from_secs(1)),
            &NoInterrupt,
        )
        .unwrap();
        assert_eq!(plan.hosts.len(), 5);
        assert_eq!(plan.targets.len(), 10);
        assert_eq!(plan.hosts[4].label, "localhost");
        assert!(plan.hosts[4]
            .addrs
            .as_ref()
            .unwrap()
            .iter()
            .all(|a| a.is_loopback()));
        let bad = vec![target::parse_host_spec("hosts", "no-such-host.invalid").unwrap()];
        assert!(plan_scan(&bad, &[1], Some(Duration::from_secs(1)), &NoInterrupt).is_err());
    }
}
