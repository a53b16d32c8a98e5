//! Parsing of the address forms users type: `"host:port"`, `"[v6]:port"`,
//! and the parts of a `(host, port)` tuple. Resolution lives in `resolve.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// A host (name or literal, without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
        }
    }

    /// The literal IP, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where a port is used, which decides whether 0 is allowed: a bind takes 0
/// for "any free port"; a connect, a send or a probe needs a real port.
/// Every port check goes through this one type, so each context states its
/// range the same way ("port must be 1-65535, got 0").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortUse {
    Bind,
    Remote,
}

impl PortUse {
    fn low(self) -> u16 {
        match self {
            PortUse::Bind => 0,
            PortUse::Remote => 1,
        }
    }

    /// The error for a port outside the range, `got` as the caller wrote it.
    pub fn out_of_range(self, arg: &'static str, got: impl std::fmt::Display) -> Error {
        Error::invalid(arg, format!("port must be {}-65535, got {got}", self.low()))
    }

    /// A port given as an integer (wide, so a huge Python int is an
    /// out-of-range value here rather than an overflow elsewhere).
    pub fn check(self, arg: &'static str, port: i128) -> Result<u16> {
        match u16::try_from(port) {
            Ok(p) if p >= self.low() => Ok(p),
            _ => Err(self.out_of_range(arg, port)),
        }
    }

    /// A port written as text (`"80"`).
    pub fn parse(self, arg: &'static str, text: &str) -> Result<u16> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid(arg, "port is missing"));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            // A service name, as nc and nmap take them ("http", "ssh").
            return match service_port(text) {
                Some(p) => self.check(arg, p.into()),
                None => Err(self.out_of_range(
                    arg,
                    format!("'{text}' (neither a number nor a service name in /etc/services)"),
                )),
            };
        }
        // Digits only: anything past u32 is out of range as well.
        let p = text.parse::<u32>().map_or(i128::MAX, i128::from);
        self.check(arg, p).map_err(|_| self.out_of_range(arg, text))
    }
}

/// The port of a service name in `/etc/services` (`"http"` -> 80), names
/// and aliases, as getservbyname(3) reads them; read once per process.
pub fn service_port(name: &str) -> Option<u16> {
    static SERVICES: OnceLock<HashMap<String, u16>> = OnceLock::new();
    SERVICES
        .get_or_init(|| {
            std::fs::read_to_string("/etc/services")
                .map(|t| parse_services(&t))
                .unwrap_or_default()
        })
        .get(name)
        .copied()
}

/// `name port/proto aliases... # comment` lines; the first entry of a name wins.
fn parse_services(text: &str) -> HashMap<String, u16> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let (Some(name), Some(port)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(Ok(port)) = port.split('/').next().map(str::parse::<u16>) else {
            continue;
        };
        for n in std::iter::once(name).chain(fields) {
            map.entry(n.to_string()).or_insert(port);
        }
    }
    map
}

/// A URL typed where `host:port` belongs (`http://web:8080/`): the message
/// says what to type instead.
fn url_error(arg: &'static str, text: &str) -> Error {
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let hint = if authority.is_empty() {
        String::new()
    } else if authority.ends_with(']') || !authority.contains(':') {
        match service_port(&scheme.to_ascii_lowercase()) {
            Some(p) => format!(": try '{authority}:{p}'"),
            None => String::new(),
        }
    } else {
        format!(": try '{authority}'")
    };
    Error::invalid(
        arg,
        format!("a target is host:port, not a URL, got {text:?}{hint}"),
    )
}

/// Check a host string: non-empty, brackets stripped from `[v6]`.
pub fn check_host(arg: &'static str, host: &str) -> Result<String> {
    let host = host.trim();
    if host.is_empty() {
        return Err(Error::invalid(arg, "host must not be empty"));
    }
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => {
            if inner.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(Error::invalid(
                    arg,
                    format!("{host:?} is not an IPv6 address"),
                ));
            }
            inner
        }
        None => host,
    };
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '\0')
    {
        return Err(Error::invalid(arg, format!("invalid host {host:?}")));
    }
    Ok(host.to_string())
}

/// Parse `"host:port"` or `"[v6addr]:port"` (any port a bind takes).
pub fn parse_host_port(arg: &'static str, text: &str) -> Result<HostPort> {
    parse_host_port_as(arg, text, PortUse::Bind)
}

/// Parse `"host:port"` or `"[v6addr]:port"`, the port checked for `usage`
/// (so a connect says "1-65535" whatever the port's fault).
pub fn parse_host_port_as(arg: &'static str, text: &str, usage: PortUse) -> Result<HostPort> {
    let text = text.trim();
    if text.contains("://") {
        return Err(url_error(arg, text));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| Error::invalid(arg, format!("missing ']' in {text:?}")))?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        let port = after.strip_prefix(':').ok_or_else(|| {
            Error::invalid(arg, format!("expected '[v6addr]:port', got {text:?}"))
        })?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(Error::invalid(
                arg,
                format!("{host:?} is not an IPv6 address"),
            ));
        }
        (host, port)
    } else {
        let colon = text.rfind(':').ok_or_else(|| {
            Error::invalid(
                arg,
                format!("expected 'host:port' or (host, port), got {text:?}"),
            )
        })?;
        let host = &text[..colon];
        if host.contains(':') {
            return Err(Error::invalid(
                arg,
                format!("IPv6 addresses need brackets: '[{host}]:port', got {text:?}"),
            ));
        }
        (host, &text[colon + 1..])
    };
    let port = usage.parse(arg, port)?;
    Ok(HostPort {
        host: check_host(arg, host)?,
        port,
    })
}

/// `(host, port)` for Python: the IP as text, IPv6 without brackets.
pub fn split_sockaddr(addr: &SocketAddr) -> (String, u16) {
    (addr.ip().to_string(), addr.port())
}

/// RFC 8305 section 4: interleave the families, starting with the first
/// family of the resolver's answer ordering preference IPv6.
pub fn happy_eyeballs_order(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let v6: Vec<SocketAddr> = addrs.iter().copied().filter(|a| a.is_ipv6()).collect();
    let v4: Vec<SocketAddr> = addrs.iter().copied().filter(|a| a.is_ipv4()).collect();
    let mut out = Vec::with_capacity(addrs.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => {
                out.extend(x);
                out.extend(y);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(h: &str, p: u16) -> HostPort {
        HostPort::new(h, p)
    }

    #[test]
    fn parses_the_forms_users_type() {
        assert_eq!(
            parse_host_port("a", "example.com:80").unwrap(),
            hp("example.com", 80)
        );
        assert_eq!(
            parse_host_port("a", "127.0.0.1:0").unwrap(),
            hp("127.0.0.1", 0)
        );
        assert_eq!(parse_host_port("a", "[::1]:8080").unwrap(), hp("::1", 8080));
        assert_eq!(
            parse_host_port("a", " localhost:65535 ").unwrap(),
            hp("localhost", 65535)
        );
    }

    #[test]
    fn rejects_bad_forms_naming_the_argument() {
        for bad in [
            "nocolon",
            ":80",
            "host:",
            "host:abc",
            "host:70000",
            "host:-1",
            "::1:80",
            "[::1]80",
            "[zz]:80",
            "[::1:80",
        ] {
            let e = parse_host_port("address", bad).unwrap_err();
            assert!(e.to_string().starts_with("address: "), "{bad}: {e}");
        }
        assert!(parse_host_port("address", "host:70000")
            .unwrap_err()
            .to_string()
            .contains("0-65535, got 70000"));
    }

    #[test]
    fn service_names_and_urls() {
        let services = "# comment\nssh 22/tcp\nhttp 80/tcp www # WWW\nhttp 80/udp\nhttp-alt 8080/tcp webcache\n";
        let map = parse_services(services);
        assert_eq!(map.get("http"), Some(&80));
        assert_eq!(map.get("www"), Some(&80));
        assert_eq!(map.get("webcache"), Some(&8080));
        assert_eq!(map.get("comment"), None);
        for (url, hint) in [
            ("http://127.0.0.1:7000", "try '127.0.0.1:7000'"),
            ("http://127.0.0.1:7000/path", "try '127.0.0.1:7000'"),
            ("tcp://[::1]:80", "try '[::1]:80'"),
        ] {
            let e = parse_host_port("t", url).unwrap_err().to_string();
            assert!(e.contains("a target is host:port, not a URL"), "{e}");
            assert!(e.contains(hint), "{e}");
        }
    }

    #[test]
    fn port_bounds_per_use() {
        assert_eq!(PortUse::Bind.check("port", 0).unwrap(), 0);
        assert_eq!(PortUse::Bind.check("port", 65535).unwrap(), 65535);
        assert_eq!(PortUse::Remote.check("port", 1).unwrap(), 1);
        for (u, bad) in [
            (PortUse::Bind, -1),
            (PortUse::Bind, 70000),
            (PortUse::Remote, 0),
            (PortUse::Remote, i128::MAX),
        ] {
            let e = u.check("port", bad).unwrap_err().to_string();
            let low = if u == PortUse::Bind { 0 } else { 1 };
            assert_eq!(e, format!("port: port must be {low}-65535, got {bad}"));
        }
        assert_eq!(PortUse::Remote.parse("p", " 80 ").unwrap(), 80);
        for bad in ["0", "65536", "99999999999999999999", "abc", "-1"] {
            let e = PortUse::Remote.parse("p", bad).unwrap_err().to_string();
            assert!(e.starts_with("p: port must be 1-65535, got "), "{e}");
        }
        assert!(PortUse::Remote.parse("p", "").is_err());
    }

    #[test]
    fn host_checks() {
        assert_eq!(check_host("h", "[::1]").unwrap(), "::1");
        assert!(check_host("h", "").is_err());
        assert!(check_host("h", "  ").is_err());
        assert!(check_host("h", "a b").is_err());
    }

    #[test]
    fn display_brackets_v6() {
        assert_eq!(hp("::1", 1).to_string(), "[::1]:1");
        assert_eq!(hp("x", 1).to_string(), "x:1");
    }

    #[test]
    fn interleaves_v6_first() {
        let addrs: Vec<SocketAddr> = ["127.0.0.1:1", "10.0.0.1:1", "[::1]:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let order = happy_eyeballs_order(&addrs);
        let s: Vec<String> = order.iter().map(|a| a.to_string()).collect();
        assert_eq!(s, ["[::1]:1", "127.0.0.1:1", "10.0.0.1:1"]);
    }
}

/// Which address family a probe or client may use (`family=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

impl Family {
    /// `"ipv4"` / `"ipv6"` (also `"4"`, `"6"`, `"inet"`, `"inet6"`).
    pub fn parse(arg: &'static str, text: &str) -> Result<Family> {
        match text.to_ascii_lowercase().as_str() {
            "ipv4" | "4" | "inet" => Ok(Family::V4),
            "ipv6" | "6" | "inet6" => Ok(Family::V6),
            _ => Err(Error::invalid(
                arg,
                format!("must be None, 'ipv4' or 'ipv6', got {text:?}"),
            )),
        }
    }

    pub fn admits(self, ip: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Any => "IP",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The family both `self` and a source address allow: a source address
    /// can only reach its own family. An error when they disagree.
    pub fn with_source(self, source: Option<&SocketAddr>) -> Result<Family> {
        let Some(src) = source else {
            return Ok(self);
        };
        let own = if src.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        if self != Family::Any && self != own {
            return Err(Error::invalid(
                "source_address",
                format!(
                    "{src} is not an {} address (family={})",
                    self.name(),
                    self.name().to_ascii_lowercase()
                ),
            ));
        }
        Ok(own)
    }

    /// Keep the addresses of this family; the error says none was left.
    pub fn filter<T: Copy>(
        self,
        host: &str,
        addrs: &[T],
        ip: impl Fn(&T) -> IpAddr,
    ) -> std::result::Result<Vec<T>, String> {
        let kept: Vec<T> = addrs
            .iter()
            .copied()
            .filter(|a| self.admits(&ip(a)))
            .collect();
        if kept.is_empty() && !addrs.is_empty() {
            return Err(format!("{host} has no {} address", self.name()));
        }
        Ok(kept)
    }
}
