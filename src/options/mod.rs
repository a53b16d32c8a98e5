//! Socket options: what the user asked for, applied through socket2, and the
//! values the kernel really holds, read back. The options themselves are
//! declared once, in `table.rs`; everything here works from that table.

use std::io;
use std::time::Duration;

use socket2::{Domain, Socket, TcpKeepalive};

use crate::error::{Error, Phase, Result};

#[cfg(test)]
mod docgen;
mod spec;
mod table;
#[cfg(test)]
mod tests;

pub use spec::{Applies, FieldValue, Kind, Reader, Spec, Value};
pub use table::{SocketOptions, OPTIONS};

/// Which protocol a socket speaks; options of the other one are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// TCP keepalive: on with the kernel's timers, or with explicit timers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Keepalive {
    Off,
    On,
    /// Seconds of idleness before the first probe, between probes, and the
    /// number of unanswered probes before the connection is dropped.
    Tuned {
        idle: Option<Duration>,
        interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// One option's value as the kernel reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum OptValue {
    Bool(bool),
    Int(u64),
    /// Seconds.
    Seconds(f64),
    Text(String),
    Unset,
}

/// The option named `name`.
pub fn spec(name: &str) -> Option<&'static Spec> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// The option names, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().map(|o| o.name)
}

/// The option a misspelled `name` most likely meant: the closest name at
/// most two edits away.
pub fn suggest(name: &str) -> Option<&'static str> {
    names()
        .map(|n| (edit_distance(name, n), n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Levenshtein distance (option names are short ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn opt_err(name: &'static str, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOPROTOOPT) || e.raw_os_error() == Some(libc::EOPNOTSUPP) {
        return Error::Unsupported {
            option: name,
            reason: e.to_string(),
        };
    }
    Error::Io {
        phase: Phase::Option,
        address: Some(name.to_string()),
        source: e,
    }
}

/// SO_KEEPALIVE, and the timers when they are given.
fn set_keepalive(s: &Socket, ka: &Keepalive) -> io::Result<()> {
    match *ka {
        Keepalive::Off => s.set_keepalive(false),
        Keepalive::On => s.set_keepalive(true),
        Keepalive::Tuned {
            idle,
            interval,
            retries,
        } => {
            let mut tk = TcpKeepalive::new();
            if let Some(t) = idle {
                tk = tk.with_time(t);
            }
            if let Some(t) = interval {
                tk = tk.with_interval(t);
            }
            if let Some(r) = retries {
                tk = tk.with_retries(r);
            }
            s.set_tcp_keepalive(&tk)
        }
    }
}

impl SocketOptions {
    /// Set `spec`'s option to `v`, checked against its kind and range.
    pub fn set(&mut self, spec: &Spec, v: Value) -> Result<()> {
        spec.kind.check(spec.name, &v)?;
        if (spec.store)(self, v) {
            Ok(())
        } else {
            // The row's kind and field type disagree: a bug in the table,
            // which the table-driven test catches.
            Err(Error::invalid(spec.name, "value does not fit the option"))
        }
    }

    /// The options that are set, with their values, in table order.
    pub fn values(&self) -> impl Iterator<Item = (&'static Spec, Value)> + '_ {
        OPTIONS
            .iter()
            .filter_map(|spec| (spec.value)(self).map(|v| (spec, v)))
    }

    /// Refuse options that make no sense for `proto`, and values out of
    /// range, before any socket exists.
    pub fn validate(&self, proto: Proto) -> Result<()> {
        if let Some((spec, _)) = self.values().find(|(spec, _)| !spec.applies.to(proto)) {
            let only = if spec.applies.tcp { "TCP" } else { "UDP" };
            return Err(Error::invalid(
                spec.name,
                format!("{} applies only to {only} sockets", spec.name),
            ));
        }
        for (spec, v) in self.values() {
            spec.kind.check(spec.name, &v)?;
        }
        Ok(())
    }

    /// Apply every option that was set. Called before bind/connect, which is
    /// where SO_REUSEADDR, IPV6_V6ONLY and the buffer sizes must be set.
    pub fn apply(&self, s: &Socket, domain: Domain) -> Result<()> {
        let v6 = domain == Domain::IPV6;
        for spec in OPTIONS {
            if spec.applies.ipv6_only && !v6 && (spec.value)(self).is_some() {
                return Err(Error::Unsupported {
                    option: spec.name,
                    reason: "applies only to IPv6 sockets".into(),
                });
            }
            (spec.apply)(self, s, v6).map_err(|e| opt_err(spec.name, e))?;
        }
        Ok(())
    }
}

/// The options the kernel holds for `s`, as `(name, value)` pairs. Options of
/// the other protocol are left out; keepalive timers are reported as
/// `keepalive_idle`, `keepalive_interval`, `keepalive_retries`.
pub fn read_back(
    s: &Socket,
    proto: Proto,
    domain: Domain,
) -> Result<Vec<(&'static str, OptValue)>> {
    let v6 = domain == Domain::IPV6;
    let mut out = Vec::with_capacity(OPTIONS.len() + 3);
    for spec in OPTIONS {
        if !spec.applies.to(proto) || (spec.applies.ipv6_only && !v6) {
            continue;
        }
        let err = |e| opt_err(spec.name, e);
        out.push((spec.name, (spec.read)(s, v6).map_err(err)?));
        for (name, read) in spec.also {
            out.push((*name, read(s, v6).map_err(err)?));
        }
    }
    Ok(out)
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }

    /// The stub's TypedDict for this protocol's options, and what takes them.
    pub fn typed_dict(self) -> (&'static str, &'static str) {
        match self {
            Proto::Tcp => ("TcpOptions", "TcpClient, TcpServer and TcpServer.echo"),
            Proto::Udp => (
                "UdpOptions",
                "UdpSocket, UdpClient, UdpServer and UdpServer.echo",
            ),
        }
    }

    /// The options a socket of this protocol takes, in table order.
    pub fn options(self) -> impl Iterator<Item = &'static Spec> {
        OPTIONS.iter().filter(move |o| o.applies.to(self))
    }
}
