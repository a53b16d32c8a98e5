//! Socket options: what the user asked for, applied through socket2, and the
//! values the kernel really holds, read back.

use std::io;
use std::time::Duration;

use socket2::{Domain, Socket, TcpKeepalive};

use crate::error::{Error, Phase, Result};

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

/// Every option a socket can be made with. `None` leaves the kernel default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SocketOptions {
    /// TCP_NODELAY: send small segments at once instead of waiting (Nagle).
    pub nodelay: Option<bool>,
    /// SO_KEEPALIVE plus TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT.
    pub keepalive: Option<Keepalive>,
    /// SO_LINGER: `Some(None)` turns lingering off; `Some(Some(0))` makes
    /// close() send a reset.
    pub linger: Option<Option<Duration>>,
    /// TCP_USER_TIMEOUT: how long sent data may stay unacknowledged before
    /// the kernel drops the connection.
    pub user_timeout: Option<Duration>,
    /// SO_RCVBUF / SO_SNDBUF in bytes (Linux doubles the value it stores).
    pub recv_buffer: Option<usize>,
    pub send_buffer: Option<usize>,
    /// SO_REUSEADDR, SO_REUSEPORT.
    pub reuse_address: Option<bool>,
    pub reuse_port: Option<bool>,
    /// IP_TTL or IPV6_UNICAST_HOPS.
    pub ttl: Option<u32>,
    /// IP_TOS or IPV6_TCLASS.
    pub tos: Option<u32>,
    /// IPV6_V6ONLY.
    pub only_v6: Option<bool>,
    /// SO_BINDTODEVICE: send and receive only through this interface.
    pub bind_device: Option<String>,
    /// SO_BROADCAST (UDP).
    pub broadcast: Option<bool>,
    /// IP_MULTICAST_TTL or IPV6_MULTICAST_HOPS (UDP).
    pub multicast_ttl: Option<u32>,
    /// IP_MULTICAST_LOOP or IPV6_MULTICAST_LOOP (UDP).
    pub multicast_loop: Option<bool>,
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

/// The option names, in the order `options()` reports them.
pub const OPTION_NAMES: &[&str] = &[
    "nodelay",
    "keepalive",
    "linger",
    "user_timeout",
    "recv_buffer",
    "send_buffer",
    "reuse_address",
    "reuse_port",
    "ttl",
    "tos",
    "only_v6",
    "bind_device",
    "broadcast",
    "multicast_ttl",
    "multicast_loop",
];

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

impl SocketOptions {
    /// Refuse options that make no sense for `proto` before any socket exists.
    pub fn validate(&self, proto: Proto) -> Result<()> {
        let tcp_only = [
            ("nodelay", self.nodelay.is_some()),
            ("keepalive", self.keepalive.is_some()),
            ("linger", self.linger.is_some()),
            ("user_timeout", self.user_timeout.is_some()),
        ];
        let udp_only = [
            ("broadcast", self.broadcast.is_some()),
            ("multicast_ttl", self.multicast_ttl.is_some()),
            ("multicast_loop", self.multicast_loop.is_some()),
        ];
        let (wrong, other) = match proto {
            Proto::Tcp => (&udp_only[..], "UDP"),
            Proto::Udp => (&tcp_only[..], "TCP"),
        };
        if let Some((name, _)) = wrong.iter().find(|(_, set)| *set) {
            return Err(Error::invalid(
                name,
                format!("{name} applies only to {other} sockets"),
            ));
        }
        if let Some(dev) = &self.bind_device {
            if dev.is_empty() || dev.len() >= libc::IFNAMSIZ || dev.contains('\0') {
                return Err(Error::invalid(
                    "bind_device",
                    format!("not an interface name: {dev:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Apply every option that was set. Called before bind/connect, which is
    /// where SO_REUSEADDR, IPV6_V6ONLY and the buffer sizes must be set.
    pub fn apply(&self, s: &Socket, domain: Domain) -> Result<()> {
        let v6 = domain == Domain::IPV6;
        if let Some(v) = self.reuse_address {
            s.set_reuse_address(v)
                .map_err(|e| opt_err("reuse_address", e))?;
        }
        if let Some(v) = self.reuse_port {
            s.set_reuse_port(v).map_err(|e| opt_err("reuse_port", e))?;
        }
        if let Some(v) = self.only_v6 {
            if !v6 {
                return Err(Error::Unsupported {
                    option: "only_v6",
                    reason: "applies only to IPv6 sockets".into(),
                });
            }
            s.set_only_v6(v).map_err(|e| opt_err("only_v6", e))?;
        }
        if let Some(dev) = &self.bind_device {
            s.bind_device(Some(dev.as_bytes()))
                .map_err(|e| opt_err("bind_device", e))?;
        }
        if let Some(v) = self.recv_buffer {
            s.set_recv_buffer_size(v)
                .map_err(|e| opt_err("recv_buffer", e))?;
        }
        if let Some(v) = self.send_buffer {
            s.set_send_buffer_size(v)
                .map_err(|e| opt_err("send_buffer", e))?;
        }
        if let Some(v) = self.ttl {
            if v6 {
                s.set_unicast_hops_v6(v)
            } else {
                s.set_ttl_v4(v)
            }
            .map_err(|e| opt_err("ttl", e))?;
        }
        if let Some(v) = self.tos {
            if v6 {
                s.set_tclass_v6(v)
            } else {
                s.set_tos_v4(v)
            }
            .map_err(|e| opt_err("tos", e))?;
        }
        if let Some(v) = self.nodelay {
            s.set_tcp_nodelay(v).map_err(|e| opt_err("nodelay", e))?;
        }
        match self.keepalive {
            None => {}
            Some(Keepalive::Off) => s
                .set_keepalive(false)
                .map_err(|e| opt_err("keepalive", e))?,
            Some(Keepalive::On) => s.set_keepalive(true).map_err(|e| opt_err("keepalive", e))?,
            Some(Keepalive::Tuned {
                idle,
                interval,
                retries,
            }) => {
                let mut ka = TcpKeepalive::new();
                if let Some(t) = idle {
                    ka = ka.with_time(t);
                }
                if let Some(t) = interval {
                    ka = ka.with_interval(t);
                }
                if let Some(r) = retries {
                    ka = ka.with_retries(r);
                }
                s.set_tcp_keepalive(&ka)
                    .map_err(|e| opt_err("keepalive", e))?;
            }
        }
        if let Some(v) = self.linger {
            s.set_linger(v).map_err(|e| opt_err("linger", e))?;
        }
        if let Some(v) = self.user_timeout {
            s.set_tcp_user_timeout(Some(v))
                .map_err(|e| opt_err("user_timeout", e))?;
        }
        if let Some(v) = self.broadcast {
            s.set_broadcast(v).map_err(|e| opt_err("broadcast", e))?;
        }
        if let Some(v) = self.multicast_ttl {
            if v6 {
                s.set_multicast_hops_v6(v)
            } else {
                s.set_multicast_ttl_v4(v)
            }
            .map_err(|e| opt_err("multicast_ttl", e))?;
        }
        if let Some(v) = self.multicast_loop {
            if v6 {
                s.set_multicast_loop_v6(v)
            } else {
                s.set_multicast_loop_v4(v)
            }
            .map_err(|e| opt_err("multicast_loop", e))?;
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
    use OptValue::*;
    let v6 = domain == Domain::IPV6;
    let mut out: Vec<(&'static str, OptValue)> = Vec::new();
    let secs = |d: Duration| Seconds(d.as_secs_f64());
    if proto == Proto::Tcp {
        out.push((
            "nodelay",
            Bool(s.tcp_nodelay().map_err(|e| opt_err("nodelay", e))?),
        ));
        out.push((
            "keepalive",
            Bool(s.keepalive().map_err(|e| opt_err("keepalive", e))?),
        ));
        out.push((
            "keepalive_idle",
            secs(
                s.tcp_keepalive_time()
                    .map_err(|e| opt_err("keepalive", e))?,
            ),
        ));
        out.push((
            "keepalive_interval",
            secs(
                s.tcp_keepalive_interval()
                    .map_err(|e| opt_err("keepalive", e))?,
            ),
        ));
        out.push((
            "keepalive_retries",
            Int(s
                .tcp_keepalive_retries()
                .map_err(|e| opt_err("keepalive", e))? as u64),
        ));
        out.push((
            "linger",
            match s.linger().map_err(|e| opt_err("linger", e))? {
                Some(d) => secs(d),
                None => Unset,
            },
        ));
        out.push((
            "user_timeout",
            match s
                .tcp_user_timeout()
                .map_err(|e| opt_err("user_timeout", e))?
            {
                Some(d) => secs(d),
                None => Unset,
            },
        ));
    }
    out.push((
        "recv_buffer",
        Int(s
            .recv_buffer_size()
            .map_err(|e| opt_err("recv_buffer", e))? as u64),
    ));
    out.push((
        "send_buffer",
        Int(s
            .send_buffer_size()
            .map_err(|e| opt_err("send_buffer", e))? as u64),
    ));
    out.push((
        "reuse_address",
        Bool(s.reuse_address().map_err(|e| opt_err("reuse_address", e))?),
    ));
    out.push((
        "reuse_port",
        Bool(s.reuse_port().map_err(|e| opt_err("reuse_port", e))?),
    ));
    let ttl = if v6 { s.unicast_hops_v6() } else { s.ttl_v4() };
    out.push(("ttl", Int(ttl.map_err(|e| opt_err("ttl", e))? as u64)));
    let tos = if v6 { s.tclass_v6() } else { s.tos_v4() };
    out.push(("tos", Int(tos.map_err(|e| opt_err("tos", e))? as u64)));
    if v6 {
        out.push((
            "only_v6",
            Bool(s.only_v6().map_err(|e| opt_err("only_v6", e))?),
        ));
    }
    out.push((
        "bind_device",
        match s.device().map_err(|e| opt_err("bind_device", e))? {
            Some(d) => Text(String::from_utf8_lossy(&d).into_owned()),
            None => Unset,
        },
    ));
    if proto == Proto::Udp {
        out.push((
            "broadcast",
            Bool(s.broadcast().map_err(|e| opt_err("broadcast", e))?),
        ));
        let mt = if v6 {
            s.multicast_hops_v6()
        } else {
            s.multicast_ttl_v4()
        };
        out.push((
            "multicast_ttl",
            Int(mt.map_err(|e| opt_err("multicast_ttl", e))? as u64),
        ));
        let ml = if v6 {
            s.multicast_loop_v6()
        } else {
            s.multicast_loop_v4()
        };
        out.push((
            "multicast_loop",
            Bool(ml.map_err(|e| opt_err("multicast_loop", e))?),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{SockAddr, Type};

    fn get<'a>(v: &'a [(&'static str, OptValue)], name: &str) -> &'a OptValue {
        &v.iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .1
    }

    #[test]
    fn tcp_options_set_and_read_back() {
        let opts = SocketOptions {
            nodelay: Some(true),
            keepalive: Some(Keepalive::Tuned {
                idle: Some(Duration::from_secs(30)),
                interval: Some(Duration::from_secs(5)),
                retries: Some(4),
            }),
            linger: Some(Some(Duration::from_secs(2))),
            user_timeout: Some(Duration::from_millis(1500)),
            recv_buffer: Some(65536),
            send_buffer: Some(65536),
            reuse_address: Some(true),
            ttl: Some(17),
            tos: Some(0x10),
            ..Default::default()
        };
        opts.validate(Proto::Tcp).unwrap();
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        opts.apply(&s, Domain::IPV4).unwrap();
        let v = read_back(&s, Proto::Tcp, Domain::IPV4).unwrap();
        assert_eq!(get(&v, "nodelay"), &OptValue::Bool(true));
        assert_eq!(get(&v, "keepalive"), &OptValue::Bool(true));
        assert_eq!(get(&v, "keepalive_idle"), &OptValue::Seconds(30.0));
        assert_eq!(get(&v, "keepalive_interval"), &OptValue::Seconds(5.0));
        assert_eq!(get(&v, "keepalive_retries"), &OptValue::Int(4));
        assert_eq!(get(&v, "linger"), &OptValue::Seconds(2.0));
        assert_eq!(get(&v, "user_timeout"), &OptValue::Seconds(1.5));
        assert_eq!(get(&v, "recv_buffer"), &OptValue::Int(131072));
        assert_eq!(get(&v, "ttl"), &OptValue::Int(17));
        assert_eq!(get(&v, "tos"), &OptValue::Int(0x10));
    }

    #[test]
    fn udp_options_on_v6() {
        let opts = SocketOptions {
            broadcast: Some(true),
            multicast_ttl: Some(3),
            multicast_loop: Some(false),
            only_v6: Some(true),
            ttl: Some(9),
            ..Default::default()
        };
        opts.validate(Proto::Udp).unwrap();
        let s = Socket::new(Domain::IPV6, Type::DGRAM, None).unwrap();
        opts.apply(&s, Domain::IPV6).unwrap();
        let v = read_back(&s, Proto::Udp, Domain::IPV6).unwrap();
        assert_eq!(get(&v, "broadcast"), &OptValue::Bool(true));
        assert_eq!(get(&v, "multicast_ttl"), &OptValue::Int(3));
        assert_eq!(get(&v, "multicast_loop"), &OptValue::Bool(false));
        assert_eq!(get(&v, "only_v6"), &OptValue::Bool(true));
        assert_eq!(get(&v, "ttl"), &OptValue::Int(9));
        s.bind(&SockAddr::from(
            "[::1]:0".parse::<std::net::SocketAddr>().unwrap(),
        ))
        .unwrap();
    }

    #[test]
    fn wrong_protocol_options_are_refused() {
        let o = SocketOptions {
            nodelay: Some(true),
            ..Default::default()
        };
        assert!(o
            .validate(Proto::Udp)
            .unwrap_err()
            .to_string()
            .contains("nodelay"));
        let o = SocketOptions {
            broadcast: Some(true),
            ..Default::default()
        };
        assert!(o
            .validate(Proto::Tcp)
            .unwrap_err()
            .to_string()
            .contains("broadcast"));
        let o = SocketOptions {
            only_v6: Some(true),
            ..Default::default()
        };
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        assert!(matches!(
            o.apply(&s, Domain::IPV4),
            Err(Error::Unsupported {
                option: "only_v6",
                ..
            })
        ));
    }
}
