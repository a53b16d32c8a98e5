//! Plans: what `check`/`check_many` and `scan` probe, names resolved once
//! each (on [`resolve_all`]'s bounded helper threads, under one deadline),
//! and the scan-size limit of the blocking `scan()`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::addr::{happy_eyeballs_order, HostPort};
use crate::error::{Error, Result};
use crate::probe::target::HostSpec;
use crate::probe::types::AddrControl;
use crate::probe::types::{HostEntry, Plan};
use crate::probe::Pacer;
use crate::resolve::resolve_all_timed;
use crate::wait::{Deadline, Interrupt};

/// Names are resolved within the probe timeout, but never less than this:
/// a connect timeout of 0.2 s says nothing about how fast DNS answers.
pub const MIN_RESOLVE_TIME: Duration = Duration::from_secs(2);

/// The most probes one blocking `scan()` holds results for.
pub const MAX_SCAN_TARGETS: usize = 1 << 24;

/// The deadline for resolving the names of one probe call.
pub fn resolve_deadline(timeout: Option<Duration>) -> Deadline {
    Deadline::after(timeout.map(|t| t.max(MIN_RESOLVE_TIME)))
}

/// Resolve `names`, each to its addresses in Happy Eyeballs order, with
/// the time each answer took.
fn resolve_names(
    names: &[String],
    timeout: Option<Duration>,
    intr: &dyn Interrupt,
) -> Result<Vec<(Result<Vec<IpAddr>>, Duration)>> {
    let answers = resolve_all_timed(names, 0, resolve_deadline(timeout), intr)?;
    Ok(answers
        .into_iter()
        .map(|(r, t)| {
            let r = r.map(|addrs| {
                happy_eyeballs_order(&addrs)
                    .iter()
                    .map(|a| a.ip())
                    .collect()
            });
            (r, t)
        })
        .collect())
}

/// The addresses of `target` that `ctl` allows (its family, and the family
/// of its source address), in Happy Eyeballs order. A name without such an
/// address fails as a lookup does (ResolveError).
pub fn resolve_target(
    target: &HostPort,
    ctl: &AddrControl,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Vec<std::net::SocketAddr>> {
    let kept = crate::tcp::connect::resolve_family(
        target,
        ctl.family,
        ctl.source.as_ref(),
        deadline,
        intr,
    )?;
    Ok(happy_eyeballs_order(&kept))
}

/// The text a failed lookup leaves in a result's `error`.
pub fn resolve_message(e: &Error) -> String {
    match e {
        Error::Resolve { host, message, .. } => format!("{message} (resolve {host})"),
        Error::Timeout { .. } => "name resolution timed out".to_string(),
        other => other.to_string(),
    }
}

/// A plan for `check`/`check_many`: one target per (host, port), names
/// resolved once each; a name that does not resolve (or has no address of
/// the family `ctl` allows) makes its targets results with state "error"
/// instead of failing the call. With `ctl.each_address`, one target per
/// address.
pub fn plan_targets(
    targets: &[HostPort],
    timeout: Option<Duration>,
    ctl: &AddrControl,
    intr: &dyn Interrupt,
) -> Result<Plan> {
    let family = ctl.family.with_source(ctl.source.as_ref())?;
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut plan = Plan::default();
    let mut names: Vec<String> = Vec::new();
    let mut name_hosts: Vec<u32> = Vec::new();
    let mut pace = Pacer::new(intr);
    plan.targets.reserve(targets.len());
    for t in targets {
        pace.tick()?;
        let h = match index.get(t.host.as_str()) {
            Some(&h) => h,
            None => {
                let h = plan.hosts.len() as u32;
                let addrs = match t.host.parse::<IpAddr>() {
                    Ok(ip) => family.filter(&t.host, &[ip], |a| *a),
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
                plan.resolve_times.push(None);
                index.insert(t.host.as_str(), h);
                h
            }
        };
        plan.targets.push((h, t.port));
    }
    let resolved = resolve_names(&names, timeout, intr)?;
    for (h, (r, took)) in name_hosts.into_iter().zip(resolved) {
        let label = &plan.hosts[h as usize].label;
        plan.hosts[h as usize].addrs = match r {
            Ok(addrs) => family.filter(label, &addrs, |a| *a),
            Err(e) => Err(resolve_message(&e)),
        };
        plan.resolve_times[h as usize] = Some(took);
    }
    Ok(if ctl.each_address {
        plan.each_address()
    } else {
        plan
    })
}

/// A plan for `scan`: every host (names resolved first; a name that does
/// not resolve raises) times every port, host by host. A plan larger than
/// `MAX_SCAN_TARGETS` is refused before any name is looked up or any memory
/// taken for it: `scan()` and `scan_iter()` both hold every job in memory
/// (~40 bytes each), so a /16 times every port would take ~170 GB.
pub fn plan_scan(
    hosts: &[HostSpec],
    ports: &[u16],
    timeout: Option<Duration>,
    ctl: &AddrControl,
    intr: &dyn Interrupt,
) -> Result<Plan> {
    let family = ctl.family.with_source(ctl.source.as_ref())?;
    let mut plan = Plan::default();
    // Addresses dedup as addresses, not as their text: sixteen /16 blocks
    // formatted and hashed every label twice (issue 15 item 9).
    let mut seen_names: HashSet<&str> = HashSet::new();
    let mut seen_ips: HashSet<IpAddr> = HashSet::new();
    let mut names: Vec<String> = Vec::new();
    let mut name_hosts: Vec<u32> = Vec::new();
    let mut pace = Pacer::new(intr);
    for spec in hosts {
        match spec {
            HostSpec::Name(n) => {
                if seen_names.insert(n.as_str()) {
                    name_hosts.push(plan.hosts.len() as u32);
                    names.push(n.clone());
                    plan.hosts.push(HostEntry {
                        label: n.clone(),
                        addrs: Ok(Vec::new()),
                    });
                }
            }
            HostSpec::Addrs(ips) => {
                for ip in ips.iter().filter(|ip| family.admits(ip)) {
                    pace.tick()?;
                    if seen_ips.insert(*ip) {
                        plan.hosts.push(HostEntry {
                            label: ip.to_string(),
                            addrs: Ok(vec![*ip]),
                        });
                    }
                }
            }
        }
    }
    let probes = plan.hosts.len().saturating_mul(ports.len());
    if probes > MAX_SCAN_TARGETS {
        return Err(Error::invalid(
            "ports",
            format!(
                "{} hosts x ports = {probes} probes is more than one scan takes ({MAX_SCAN_TARGETS}); scan fewer hosts or ports at a time",
                plan.hosts.len(),
            ),
        ));
    }
    let resolved = resolve_names(&names, timeout, intr)?;
    plan.resolve_times = vec![None; plan.hosts.len()];
    for (h, (r, took)) in name_hosts.into_iter().zip(resolved) {
        let label = plan.hosts[h as usize].label.clone();
        let addrs = family
            .filter(&label, &r?, |a| *a)
            .map_err(|m| Error::invalid("hosts", m))?;
        plan.hosts[h as usize].addrs = Ok(addrs);
        plan.resolve_times[h as usize] = Some(took);
    }
    plan.targets.reserve(probes);
    let mut pace = Pacer::new(intr);
    for h in 0..plan.hosts.len() as u32 {
        for &p in ports {
            pace.tick()?;
            plan.targets.push((h, p));
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::target;
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
            &AddrControl::default(),
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
        let t = Some(Duration::from_secs(1));
        let plan = plan_scan(&hosts, &[22, 80], t, &AddrControl::default(), &NoInterrupt).unwrap();
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
        assert!(plan_scan(&bad, &[1], t, &AddrControl::default(), &NoInterrupt).is_err());
    }

    #[test]
    fn scan_size_limit_is_checked_before_anything_is_resolved_or_expanded() {
        // A /16 times every port: 4.3 billion probes. Refused at once, and
        // before the name (which would not resolve) is looked up.
        let hosts = vec![
            target::parse_host_spec("hosts", "10.0.0.0/16").unwrap(),
            target::parse_host_spec("hosts", "no-such-host.invalid").unwrap(),
        ];
        let ports: Vec<u16> = (1..=65535).collect();
        let e = plan_scan(&hosts, &ports, None, &AddrControl::default(), &NoInterrupt).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
        let probes = 65537u64 * 65535;
        assert_eq!(
            e.to_string(),
            format!(
                "ports: 65537 hosts x ports = {probes} probes is more than one scan takes ({MAX_SCAN_TARGETS}); scan fewer hosts or ports at a time"
            )
        );
        let small = vec![target::parse_host_spec("hosts", "127.0.0.1").unwrap()];
        let plan = plan_scan(&small, &[1, 2], None, &AddrControl::default(), &NoInterrupt).unwrap();
        assert_eq!(plan.targets.len(), 2);
    }
}
