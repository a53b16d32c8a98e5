//! Connections on a local port, read from `/proc/net/tcp` and
//! `/proc/net/tcp6`: what `wait_for(state="drained")` waits on.
//!
//! A host without IPv6 has no `tcp6` file (ansible #23456): a missing file
//! is no connections, not an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};
// The `st` column numbers states as `tcpi_state` does: one table for both.
use crate::tcp::TCP_STATES;

/// The states a name can pick (the table's slot 0 is no state).
fn named_states() -> &'static [&'static str] {
    &TCP_STATES[1..]
}

/// The state named `name` (any case, `-` or `_`), or why not.
pub fn state_named(name: &str) -> Result<&'static str> {
    let n = name.trim().to_ascii_uppercase().replace('-', "_");
    named_states()
        .iter()
        .find(|s| **s == n)
        .copied()
        .ok_or_else(|| {
            Error::invalid(
                "drain_ignore",
                format!(
                    "unknown TCP state {name:?} (one of {})",
                    named_states().join(", ")
                ),
            )
        })
}

/// One socket of the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: IpAddr,
    pub port: u16,
    pub state: &'static str,
}

fn hex_ip(h: &str) -> Option<IpAddr> {
    // The kernel prints each 32-bit word in host byte order.
    let words: Vec<u32> = (0..h.len() / 8)
        .map(|i| {
            h.get(i * 8..i * 8 + 8)
                .and_then(|w| u32::from_str_radix(w, 16).ok())
        })
        .collect::<Option<_>>()?;
    match words.as_slice() {
        [a] => Some(IpAddr::V4(Ipv4Addr::from(a.to_ne_bytes()))),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            let v6 = Ipv6Addr::from(bytes);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

/// The entries of one table's text; lines that do not parse are skipped.
pub fn parse_table(text: &str) -> Vec<TcpEntry> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1)?;
            let st = f.nth(1)?;
            let (ip, port) = local.split_once(':')?;
            let state = usize::from_str_radix(st, 16).ok()?;
            Some(TcpEntry {
                local: hex_ip(ip)?,
                port: u16::from_str_radix(port, 16).ok()?,
                state: named_states().get(state.checked_sub(1)?)?,
            })
        })
        .collect()
}

/// Every TCP socket of this network namespace.
pub fn tcp_entries() -> Result<Vec<TcpEntry>> {
    let mut out = Vec::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(path) {
            Ok(text) => out.extend(parse_table(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(crate::error::Phase::Connect, None, e)),
        }
    }
    Ok(out)
}

/// Connections on local `port` (and local address `ip`, unless `None`)
/// in a state other than LISTEN and the `ignore`d ones.
pub fn busy(entries: &[TcpEntry], ip: Option<IpAddr>, port: u16, ignore: &[&str]) -> usize {
    holding(entries, ip, port, ignore).len()
}

/// The states of the connections [`busy`] counts, one per connection.
pub fn holding(
    entries: &[TcpEntry],
    ip: Option<IpAddr>,
    port: u16,
    ignore: &[&str],
) -> Vec<&'static str> {
    entries
        .iter()
        .filter(|e| e.port == port && e.state != "LISTEN" && !ignore.contains(&e.state))
        .filter(|e| ip.is_none_or(|ip| ip == e.local))
        .map(|e| e.state)
        .collect()
}

/// "2 ESTABLISHED, 1 CLOSE_WAIT": what holds a drain, for its message.
pub fn describe(states: &[&str]) -> String {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for s in states {
        match seen.iter_mut().find(|(n, _)| n == s) {
            Some((_, c)) => *c += 1,
            None => seen.push((s, 1)),
        }
    }
    seen.iter()
        .map(|(s, c)| format!("{c} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:D432 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D433 01 00000000:00000000
   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000
";

    #[test]
    fn reads_both_tables() {
        let v4 = parse_table(TCP);
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            v4.iter().map(|e| e.state).collect::<Vec<_>>(),
            ["LISTEN", "ESTABLISHED", "TIME_WAIT"]
        );
        assert!(v4.iter().all(|e| e.port == 8080 && e.local == lo));
        let v6 = parse_table(TCP6);
        assert_eq!(v6[0].local, lo, "v4-mapped reads as v4");
        assert_eq!(
            (v6[1].local, v6[1].port),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 22)
        );
        let all: Vec<_> = v4.into_iter().chain(v6).collect();
        assert_eq!(busy(&all, None, 8080, &["TIME_WAIT"]), 2);
        assert_eq!(busy(&all, None, 8080, &[]), 3);
        assert_eq!(busy(&all, Some(lo), 8080, &["TIME_WAIT", "ESTABLISHED"]), 0);
        assert_eq!(
            busy(&all, None, 22, &[]),
            0,
            "a listener is not a connection"
        );
    }

    #[test]
    fn state_names() {
        assert_eq!(state_named("time-wait").unwrap(), "TIME_WAIT");
        assert!(state_named("WAITING")
            .unwrap_err()
            .to_string()
            .contains("TIME_WAIT"));
    }

    #[test]
    fn the_live_tables_read() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let e = tcp_entries().unwrap();
        assert!(busy(&e, None, port, &[]) >= 1, "{e:?}");
    }
}
