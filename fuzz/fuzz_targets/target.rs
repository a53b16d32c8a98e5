//! Probe targets and scan host specs (names, literals, CIDR blocks), and
//! the scan plan built from them: a CIDR block is every address of the
//! network, never more than MAX_CIDR_HOSTS; bad input is a ValueError.
#![no_main]

#[path = "common.rs"]
mod common;

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use socketkit::probe::plan::plan_scan;
use socketkit::probe::target::{
    parse_host_spec, parse_target, split_hosts, HostSpec, MAX_CIDR_HOSTS,
};
use socketkit::probe::types::AddrControl;
use socketkit::wait::NoInterrupt;

fn as_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(*v4).into(),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let port = (sel & 1 == 1).then_some(u16::from(sel >> 1));
    match parse_target("target", text, port) {
        Ok(hp) => {
            assert!(hp.port >= 1);
            assert!(port.is_none_or(|p| p == hp.port));
        }
        Err(e) => common::names_arg(&e, "target"),
    }
    let mut specs = Vec::new();
    for h in split_hosts(text) {
        assert!(!h.is_empty());
        match parse_host_spec("hosts", h) {
            Ok(HostSpec::Name(n)) => {
                assert!(!n.is_empty() && !n.contains(':') && !n.contains('/'));
            }
            Ok(HostSpec::Addrs(ips)) => {
                assert!(!ips.is_empty() && ips.len() as u128 <= MAX_CIDR_HOSTS);
                if h.contains('/') {
                    // The whole block: a power of two of consecutive addresses.
                    assert!(ips.len().is_power_of_two());
                    let first = as_u128(&ips[0]);
                    assert_eq!(first % ips.len() as u128, 0);
                    for (i, ip) in ips.iter().enumerate() {
                        assert_eq!(ip.is_ipv4(), ips[0].is_ipv4());
                        assert_eq!(as_u128(ip), first + i as u128);
                    }
                } else {
                    assert_eq!(ips.len(), 1);
                }
                specs.push(HostSpec::Addrs(ips));
            }
            Err(e) => common::names_arg(&e, "hosts"),
        }
    }
    // Literals and blocks only: a name would be a DNS lookup. Big blocks
    // were checked above; planning a /16 per input would only slow the run.
    let total: usize = specs
        .iter()
        .map(|s| match s {
            HostSpec::Addrs(ips) => ips.len(),
            HostSpec::Name(_) => 0,
        })
        .sum();
    if total > 4096 {
        return;
    }
    let ports: Vec<u16> = (1..=u16::from(sel % 4 + 1)).collect();
    match plan_scan(&specs, &ports, None, &AddrControl::default(), &NoInterrupt) {
        Ok(plan) => {
            assert_eq!(plan.targets.len(), plan.hosts.len() * ports.len());
            assert!(plan
                .targets
                .iter()
                .all(|(h, _)| (*h as usize) < plan.hosts.len()));
        }
        Err(e) => common::names_arg(&e, "ports"),
    }
});
