//! What the probes take as input: targets (`"host:port"`, `"[v6]:port"`, a
//! host plus a separate port), host specs for scans (names, IPv4/IPv6
//! literals, CIDR blocks) and port specs (`"22,80,8000-8100"`, nmap's `"-"`).
//!
//! Every error is `Error::InvalidArgument` naming the argument, so the
//! binding raises `ValueError("ports: ...")`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::{check_host, parse_host_port_as, HostPort, PortUse};
use crate::error::{Error, Result};

/// The most addresses one CIDR block may expand to (a /16 of IPv4).
pub const MAX_CIDR_HOSTS: u128 = 65_536;

/// One entry of a scan's host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSpec {
    /// A name, resolved before the scan starts.
    Name(String),
    /// A literal address or every address of a CIDR block.
    Addrs(Vec<IpAddr>),
}

/// A target for `check`: `text` is `"host:port"`/`"[v6]:port"`, or a bare
/// host when `port` is given separately.
pub fn parse_target(arg: &'static str, text: &str, port: Option<u16>) -> Result<HostPort> {
    let hp = match port {
        None => parse_host_port_as(arg, text, PortUse::Remote)?,
        Some(port) => {
            let t = text.trim();
            // A bare IPv6 literal has colons; anything else with one is
            // "host:port" plus a second port.
            let bare_v6 = t.parse::<Ipv6Addr>().is_ok()
                || t.strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .is_some_and(|x| x.parse::<Ipv6Addr>().is_ok());
            if t.contains(':') && !bare_v6 {
                return Err(Error::invalid(
                    arg,
                    format!("{t:?} already names a port; pass the port once, either in the target or as port="),
                ));
            }
            HostPort {
                host: check_host(arg, t)?,
                port,
            }
        }
    };
    PortUse::Remote.check(arg, hp.port.into())?;
    Ok(hp)
}

/// Collects ports in first-seen order without duplicates.
#[derive(Debug)]
pub struct PortSet {
    seen: Vec<u64>,
    ports: Vec<u16>,
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet {
            seen: vec![0; 1024],
            ports: Vec::new(),
        }
    }
}

impl PortSet {
    pub fn insert(&mut self, port: u16) {
        let (w, b) = (port as usize / 64, port as usize % 64);
        if self.seen[w] & (1 << b) == 0 {
            self.seen[w] |= 1 << b;
            self.ports.push(port);
        }
    }

    pub fn insert_range(&mut self, lo: u16, hi: u16) {
        for p in lo..=hi {
            self.insert(p);
        }
    }

    /// Parse one port spec string and add its ports.
    pub fn add_spec(&mut self, arg: &'static str, text: &str) -> Result<()> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid(arg, "empty port list"));
        }
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(Error::invalid(
                    arg,
                    format!("empty item in port list {text:?}"),
                ));
            }
            // A service name may contain '-' ("http-alt"): not a range.
            if let Some(p) = crate::addr::service_port(part) {
                self.insert(PortUse::Remote.check(arg, p.into())?);
                continue;
            }
            match part.split_once('-') {
                None => self.insert(parse_one(arg, part)?),
                Some((lo, hi)) => {
                    // nmap's shorthands: "-" is every port, "-1024" starts
                    // at 1, "60000-" ends at 65535.
                    let lo = if lo.trim().is_empty() {
                        1
                    } else {
                        parse_one(arg, lo)?
                    };
                    let hi = if hi.trim().is_empty() {
                        65535
                    } else {
                        parse_one(arg, hi)?
                    };
                    if lo > hi {
                        return Err(Error::invalid(
                            arg,
                            format!("range {part:?} runs backwards (start {lo} > end {hi})"),
                        ));
                    }
                    self.insert_range(lo, hi);
                }
            }
        }
        Ok(())
    }

    pub fn into_vec(self) -> Vec<u16> {
        self.ports
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

fn parse_one(arg: &'static str, text: &str) -> Result<u16> {
    PortUse::Remote.parse(arg, text)
}

/// `"22,80,8000-8100"` as a list of ports, first-seen order, no duplicates.
pub fn parse_ports(arg: &'static str, text: &str) -> Result<Vec<u16>> {
    let mut set = PortSet::default();
    set.add_spec(arg, text)?;
    Ok(set.into_vec())
}

/// Split a host list written as one string: commas or whitespace separate.
pub fn split_hosts(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// One host of a scan: a name, an IP literal or a CIDR block.
pub fn parse_host_spec(arg: &'static str, text: &str) -> Result<HostSpec> {
    let text = text.trim();
    if let Some((net, bits)) = text.split_once('/') {
        return parse_cidr(arg, text, net, bits).map(HostSpec::Addrs);
    }
    let host = check_host(arg, text)?;
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(HostSpec::Addrs(vec![ip])),
        Err(_) => {
            if host.contains(':') {
                return Err(Error::invalid(
                    arg,
                    format!("{text:?} is neither a host name nor an IP address (hosts take no port; pass ports separately)"),
                ));
            }
            Ok(HostSpec::Name(host))
        }
    }
}

fn parse_cidr(arg: &'static str, text: &str, net: &str, bits: &str) -> Result<Vec<IpAddr>> {
    let net = net.trim();
    let net = net
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(net);
    let ip: IpAddr = net.parse().map_err(|_| {
        Error::invalid(
            arg,
            format!("{text:?}: {net:?} is not an IP address (CIDR blocks look like 10.0.0.0/30)"),
        )
    })?;
    let max = if ip.is_ipv4() { 32u32 } else { 128 };
    let bits: u32 = bits
        .trim()
        .parse()
        .ok()
        .filter(|b| *b <= max)
        .ok_or_else(|| {
            Error::invalid(
                arg,
                format!("{text:?}: prefix length must be 0-{max}, got {bits:?}"),
            )
        })?;
    let count: u128 = 1u128 << (max - bits).min(127);
    if max - bits >= 127 || count > MAX_CIDR_HOSTS {
        return Err(Error::invalid(
            arg,
            format!(
                "{text:?} has too many addresses to scan (at most {MAX_CIDR_HOSTS}, a /{} for IPv4)",
                32 - MAX_CIDR_HOSTS.trailing_zeros()
            ),
        ));
    }
    // Every address of the block, network and broadcast included, as nmap does.
    Ok(match ip {
        IpAddr::V4(v4) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let base = u32::from(v4) & mask;
            (0..count as u32)
                .map(|i| IpAddr::V4(Ipv4Addr::from(base + i)))
                .collect()
        }
        IpAddr::V6(v6) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            let base = u128::from(v6) & mask;
            (0..count)
                .map(|i| IpAddr::V6(Ipv6Addr::from(base + i)))
                .collect()
        }
    })
}

/// `concurrency`: at least 1.
pub fn check_concurrency(n: i64) -> Result<usize> {
    if n < 1 {
        return Err(Error::invalid(
            "concurrency",
            format!("must be at least 1, got {n}"),
        ));
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// `rate`: new connections per second, positive and finite.
pub fn check_rate(rate: f64) -> Result<f64> {
    if !rate.is_finite() || rate <= 0.0 {
        return Err(Error::invalid(
            "rate",
            format!("must be a positive number of connections per second, got {rate}"),
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn targets() {
        let t = parse_target("target", "example.com:22", None).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", 22));
        let t = parse_target("target", "[::1]:80", None).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        let t = parse_target("target", "::1", Some(80)).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        let t = parse_target("target", "[::1]", Some(80)).unwrap();
        assert_eq!(t.host, "::1");
        let t = parse_target("target", "10.1.2.3", Some(443)).unwrap();
        assert_eq!(t.host, "10.1.2.3");
        assert!(err(parse_target("target", "a:80", Some(80))).starts_with("target: "));
        assert!(err(parse_target("target", "a:70000", None)).contains("1-65535, got 70000"));
        assert!(err(parse_target("target", "a:0", None)).contains("1-65535, got 0"));
        assert!(err(parse_target("target", "nocolon", None)).starts_with("target: "));
    }

    #[test]
    fn service_names_are_ports() {
        // Needs /etc/services, as getservbyname(3) does.
        if crate::addr::service_port("ssh").is_none() {
            return;
        }
        assert_eq!(parse_ports("ports", "ssh,80").unwrap(), vec![22, 80]);
        let t = parse_target("target", "localhost:ssh", None).unwrap();
        assert_eq!(t.port, 22);
    }

    #[test]
    fn port_lists_and_ranges() {
        assert_eq!(parse_ports("ports", "22").unwrap(), vec![22]);
        assert_eq!(
            parse_ports("ports", "22,80,8000-8002").unwrap(),
            vec![22, 80, 8000, 8001, 8002]
        );
        assert_eq!(parse_ports("ports", " 80 , 22,80 ").unwrap(), vec![80, 22]);
        assert_eq!(parse_ports("ports", "-").unwrap().len(), 65535);
        assert_eq!(parse_ports("ports", "1-65535").unwrap().len(), 65535);
        assert_eq!(parse_ports("ports", "-3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_ports("ports", "65534-").unwrap(), vec![65534, 65535]);
        assert_eq!(parse_ports("ports", "7-7").unwrap(), vec![7]);
    }

    #[test]
    fn bad_ports_name_the_argument() {
        for (bad, needle) in [
            // One range per context (issue 17): a probed port is 1-65535,
            // whatever the way it is wrong.
            ("70000", "1-65535, got 70000"),
            ("5-1", "runs backwards"),
            ("0", "1-65535, got 0"),
            ("", "empty"),
            ("22,,80", "empty item"),
            ("nosuchservice", "1-65535, got 'nosuchservice'"),
            ("1-70000", "got 70000"),
        ] {
            let e = err(parse_ports("ports", bad));
            assert!(e.starts_with("ports: "), "{bad}: {e}");
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn host_specs() {
        assert_eq!(
            parse_host_spec("hosts", "localhost").unwrap(),
            HostSpec::Name("localhost".into())
        );
        assert_eq!(
            parse_host_spec("hosts", "::1").unwrap(),
            HostSpec::Addrs(vec!["::1".parse().unwrap()])
        );
        assert_eq!(
            parse_host_spec("hosts", "[::1]").unwrap(),
            HostSpec::Addrs(vec!["::1".parse().unwrap()])
        );
        let HostSpec::Addrs(a) = parse_host_spec("hosts", "10.0.0.1/30").unwrap() else {
            panic!()
        };
        let s: Vec<String> = a.iter().map(|x| x.to_string()).collect();
        assert_eq!(s, ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let HostSpec::Addrs(a) = parse_host_spec("hosts", "127.0.0.1/32").unwrap() else {
            panic!()
        };
        assert_eq!(a.len(), 1);
        let HostSpec::Addrs(a) = parse_host_spec("hosts", "fe80::/126").unwrap() else {
            panic!()
        };
        assert_eq!(a.len(), 4);
        assert_eq!(a[3].to_string(), "fe80::3");
        let HostSpec::Addrs(a) = parse_host_spec("hosts", "10.0.0.0/16").unwrap() else {
            panic!()
        };
        assert_eq!(a.len(), 65536);
    }

    #[test]
    fn bad_hosts_name_the_argument() {
        for (bad, needle) in [
            ("10.0.0.0/33", "prefix length must be 0-32"),
            ("10.0.0.0/-1", "prefix length"),
            ("::/129", "0-128"),
            ("10.0.0.0/8", "too many"),
            ("::/0", "too many"),
            ("banana/24", "not an IP address"),
            ("", "must not be empty"),
            ("host:80", "neither"),
            ("a b", "invalid host"),
        ] {
            let e = err(parse_host_spec("hosts", bad));
            assert!(e.starts_with("hosts: "), "{bad}: {e}");
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn split_host_lists() {
        let v: Vec<&str> = split_hosts("a, b  c,,d").collect();
        assert_eq!(v, ["a", "b", "c", "d"]);
    }

    #[test]
    fn limits() {
        assert!(err(check_concurrency(0)).starts_with("concurrency: "));
        assert_eq!(check_concurrency(5).unwrap(), 5);
        assert!(err(check_rate(0.0)).starts_with("rate: "));
        assert!(check_rate(f64::NAN).is_err());
        assert_eq!(check_rate(10.0).unwrap(), 10.0);
    }
}
